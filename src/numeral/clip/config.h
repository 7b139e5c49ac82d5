#pragma once
// CLIP's shape (Radford et al. 2021): a ViT image encoder and a causal text transformer, each
// projected into one embedding space. Read from a Hugging Face `config.json` (CLIPModel), whose
// defaults it shares, or named: ViT-B/32, ViT-B/16, ViT-L/14.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace numeral::clip {

// One transformer tower (HF CLIPVisionConfig / CLIPTextConfig field names).
struct TowerConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "quick_gelu" (x * sigmoid(1.702 x)) or "gelu"
};

struct VisionConfig : TowerConfig {
  int64_t image_size = 224;  // the square input after resize and centre crop
  int64_t patch_size = 32;
  int64_t num_channels = 3;
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

struct TextConfig : TowerConfig {
  int64_t vocab_size = 49408;
  int64_t max_position_embeddings = 77;  // the context length
  // The end-of-text id the pooled output is read at. 2 is the legacy value of older HF configs
  // (openai/clip-vit-*): the pooled position is then argmax(ids), as HF and OpenAI do.
  int64_t eos_token_id = 49407;
  TextConfig() {
    hidden_size = 512;
    intermediate_size = 2048;
    num_attention_heads = 8;
  }
};

struct ClipConfig {
  std::string name = "ViT-B/32";  // where the config came from (a preset name or a path)
  VisionConfig vision;
  TextConfig text;
  int64_t projection_dim = 512;            // the shared embedding width
  double logit_scale_init_value = 2.6592;  // log(1 / 0.07)

  // Throws numeral::Error naming the field when a value is out of range (e.g. hidden_size not
  // divisible by num_attention_heads, image_size not a multiple of patch_size).
  void validate() const;
};

// "ViT-B/32", "ViT-B/16" or "ViT-L/14" (OpenAI's released shapes); other names are an error
// listing these.
ClipConfig clip_preset(const std::string& name);

// A Hugging Face CLIPModel config.json (text_config / vision_config, or the older
// text_config_dict / vision_config_dict); absent fields take HF's defaults. Throws numeral::Error
// for a missing or unparsable file, a config of another model type or a bad value.
ClipConfig read_clip_config(const std::filesystem::path& config_json);
ClipConfig clip_config_from_json(const nlohmann::json& j, const std::string& origin);

// The same as HF writes it (text_config, vision_config, projection_dim, ...).
nlohmann::json clip_config_to_json(const ClipConfig& config);

}  // namespace numeral::clip
