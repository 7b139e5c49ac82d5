#include "numeral/model/config.h"

#include <nlohmann/json.hpp>

#include "numeral/common/error.h"

namespace numeral {

void UNetConfig::validate() const {
  NUMERAL_CHECK(image_size >= 4, "model: image_size must be at least 4, got {}", image_size);
  NUMERAL_CHECK(image_channels >= 1 && image_channels <= 4,
                "model: image_channels must be 1..4, got {}", image_channels);
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
  NUMERAL_CHECK(class_embed_dim >= 1, "model: class_embed_dim must be >= 1, got {}",
                class_embed_dim);
  NUMERAL_CHECK(num_classes >= 1, "model: num_classes must be >= 1, got {}", num_classes);
  if (attention) {
    NUMERAL_CHECK(attention_heads >= 1 && channels.back() % attention_heads == 0,
                  "model: attention_heads={} must divide the last width {}", attention_heads,
                  channels.back());
  }
}

int64_t UNetConfig::bottleneck_size() const {
  return image_size >> (channels.size() - 1);
}

void to_json(nlohmann::json& j, const UNetConfig& c) {
  j = nlohmann::json{{"image_size", c.image_size},
                     {"image_channels", c.image_channels},
                     {"channels", c.channels},
                     {"time_embed_dim", c.time_embed_dim},
                     {"class_embed_dim", c.class_embed_dim},
                     {"num_classes", c.num_classes},
                     {"groups", c.groups},
                     {"attention", c.attention},
                     {"attention_heads", c.attention_heads},
                     {"guidance_input", c.guidance_input}};
}

void from_json(const nlohmann::json& j, UNetConfig& c) {
  const UNetConfig d;
  c.image_size = j.value("image_size", d.image_size);
  c.image_channels = j.value("image_channels", d.image_channels);
  c.channels = j.value("channels", d.channels);
  c.time_embed_dim = j.value("time_embed_dim", d.time_embed_dim);
  c.class_embed_dim = j.value("class_embed_dim", d.class_embed_dim);
  c.num_classes = j.value("num_classes", d.num_classes);
  c.groups = j.value("groups", d.groups);
  c.attention = j.value("attention", d.attention);
  c.attention_heads = j.value("attention_heads", d.attention_heads);
  c.guidance_input = j.value("guidance_input", d.guidance_input);
}

}  // namespace numeral
