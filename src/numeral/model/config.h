#pragma once
// The U-Net's shape, defined once: the CLI binds flags to these fields and every checkpoint stores
// them, so a model can be rebuilt from its file alone.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "numeral/common/fields.h"

namespace numeral {

// Configuration of the noise-predicting U-Net; fields in describe() below.
struct UNetConfig {
  int64_t image_size = 28;
  int64_t image_channels = 1;
  std::vector<int64_t> channels = {64, 64, 128};
  int64_t time_embed_dim = 128;
  int64_t class_embed_dim = 128;
  int64_t num_classes = 10;
  int64_t groups = 8;
  bool attention = false;
  int64_t attention_heads = 4;
  std::vector<int64_t> attention_at;  // sides of the DownBlock/UpBlock outputs that get attention
  bool guidance_input = false;

  // Throws FieldError naming the field when the combination cannot be built.
  void validate() const;
  // Resolution at the bottleneck: image_size / 2^(levels - 1).
  int64_t bottleneck_size() const;
  // Whether the blocks whose outputs have `side` pixels are followed by self-attention.
  bool attends_at(int64_t side) const;
};

// The U-Net's widths for an image side when a run names none: 3 levels up to 32 pixels (28 -> 14
// -> 7, 32 -> 16 -> 8), 4 up to 64, 5 up to 128, 6 beyond, so the bottleneck stays 7 or 8 pixels.
std::vector<int64_t> default_widths(int64_t image_size);

template <class V>
void describe(UNetConfig& m, V& v) {
  v("image_size", m.image_size, "image height and width in pixels (train: default the data's)",
    at_least(4));
  v("image_channels", m.image_channels, "1 (grey) or 3 (RGB) (train: default the data's)",
    between(1, 4));
  v("channels", m.channels,
    "U-Net width per level, e.g. 64,64,128; resolution halves per level (train: default by image "
    "size, 3 levels to 32 px, 4 to 64, 5 to 128)",
    at_least(1));
  v("time_embed_dim", m.time_embed_dim, "sinusoidal time features and the time MLP's width",
    at_least(2));
  v("class_embed_dim", m.class_embed_dim, "hidden width of the class EmbedBlock", at_least(1));
  v("num_classes", m.num_classes, "number of labels (train: default the data's)", at_least(1));
  v("groups", m.groups, "GroupNorm groups (must divide every width)", at_least(1));
  v("attention", m.attention, "self-attention at the lowest resolution");
  v("attention_heads", m.attention_heads, "heads of every attention (must divide its width)",
    at_least(1));
  v("attention_at", m.attention_at,
    "also self-attention after the DownBlocks and UpBlocks whose outputs have these sides, e.g. "
    "16,8 at 64 px (sides: the image size halved once per level)",
    at_least(1));
  // A distilled student also takes the guidance weight w as an input, so one call gives the guided
  // prediction (Meng et al. 2023, sec. 4.1); set by `numeral distill`, never a flag.
  v("guidance_input", m.guidance_input, "the network takes the guidance weight w as an input");
}

void to_json(nlohmann::json& j, const UNetConfig& c);
void from_json(const nlohmann::json& j, UNetConfig& c);

}  // namespace numeral
