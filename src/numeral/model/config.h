#pragma once
// The U-Net's shape, defined once: the CLI binds flags to these fields and every checkpoint stores
// them, so a model can be rebuilt from its file alone.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace numeral {

// Configuration of the noise-predicting U-Net.
struct UNetConfig {
  int64_t image_size = 28;                        // square images: 28 (MNIST), 32, 64, ...
  int64_t image_channels = 1;                     // 1 (grey) or 3 (RGB)
  std::vector<int64_t> channels = {64, 64, 128};  // width per level; resolution halves per level
  int64_t time_embed_dim = 128;   // sinusoidal features of t and the time MLP's width
  int64_t class_embed_dim = 128;  // hidden width of the class EmbedBlock
  int64_t num_classes = 10;       // labels 0..num_classes-1; kNullLabel = unconditional
  int64_t groups = 8;             // GroupNorm groups (must divide every width)
  bool attention = false;         // self-attention at the lowest resolution
  int64_t attention_heads = 4;    // heads of that attention (must divide its width)
  // The network also takes the guidance weight w as an input, so one call gives the guided
  // prediction: a distilled student (Meng et al. 2023, sec. 4.1). False for a trained model.
  bool guidance_input = false;

  // Throws numeral::Error naming the field when the combination cannot be built.
  void validate() const;
  // Resolution at the bottleneck: image_size / 2^(levels - 1).
  int64_t bottleneck_size() const;
};

void to_json(nlohmann::json& j, const UNetConfig& c);
void from_json(const nlohmann::json& j, UNetConfig& c);

}  // namespace numeral
