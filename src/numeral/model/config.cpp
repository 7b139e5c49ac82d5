#include "numeral/model/config.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "numeral/common/error.h"

namespace numeral {

void UNetConfig::validate() const {
  check_fields(*this);
  NUMERAL_CHECK(channels.size() >= 2 && channels.size() <= 6,
                "model: channels must list 2 to 6 widths, got {}", channels.size());
  const int64_t factor = int64_t{1} << (channels.size() - 1);
  NUMERAL_CHECK(image_size % factor == 0,
                "model: image_size {} must be divisible by 2^(levels-1) = {} for {} levels",
                image_size, factor, channels.size());
  for (int64_t width : channels) {
    NUMERAL_CHECK(width > 0 && width % groups == 0,
                  "model: every width must be a positive multiple of groups={}, got {}", groups,
                  width);
  }
  NUMERAL_CHECK(time_embed_dim >= 2 && time_embed_dim % 2 == 0,
                "model: time_embed_dim must be even and >= 2, got {}", time_embed_dim);
  if (attention) {
    NUMERAL_CHECK(attention_heads >= 1 && channels.back() % attention_heads == 0,
                  "model: attention_heads={} must divide the last width {}", attention_heads,
                  channels.back());
  }
  // Block outputs: DownBlock i at image_size >> (i + 1) with width i + 1, UpBlock outputs at
  // image_size >> i with width i (i < levels - 1).
  for (int64_t side : attention_at) {
    bool found = false;
    for (size_t i = 0; i + 1 < channels.size(); ++i) {
      for (const auto& [at, width] : {std::pair{image_size >> (i + 1), channels[i + 1]},
                                      std::pair{image_size >> i, channels[i]}}) {
        if (at != side) continue;
        found = true;
        NUMERAL_CHECK(width % attention_heads == 0,
                      "model: attention_heads={} must divide the width {} at side {}",
                      attention_heads, width, side);
      }
    }
    std::vector<int64_t> sides;
    for (int64_t i = 0; i < static_cast<int64_t>(channels.size()); ++i)
      sides.push_back(image_size >> i);
    NUMERAL_CHECK(found, "model: attention_at {}: no block output has that side (sides: {})", side,
                  fmt::join(sides, ","));
  }
}

bool UNetConfig::attends_at(int64_t side) const {
  return std::find(attention_at.begin(), attention_at.end(), side) != attention_at.end();
}

std::vector<int64_t> default_widths(int64_t image_size) {
  if (image_size <= 32) return {64, 64, 128};
  if (image_size <= 64) return {64, 64, 128, 128};
  if (image_size <= 128) return {64, 64, 128, 128, 256};
  return {64, 64, 128, 128, 256, 256};
}

int64_t UNetConfig::bottleneck_size() const {
  return image_size >> (channels.size() - 1);
}

void to_json(nlohmann::json& j, const UNetConfig& c) {
  j = fields_to_json(c);
}

void from_json(const nlohmann::json& j, UNetConfig& c) {
  fields_from_json(j, c, {"model config"});
}

}  // namespace numeral
