#include "numeral/clip/config.h"

#include <fstream>

#include "numeral/common/error.h"

namespace numeral::clip {
namespace {

void check_tower(const TowerConfig& t, const char* tower) {
  NUMERAL_CHECK(t.hidden_size >= 1 && t.intermediate_size >= 1 && t.num_hidden_layers >= 1 &&
                    t.num_attention_heads >= 1,
                "CLIP {}: hidden_size, intermediate_size, num_hidden_layers and "
                "num_attention_heads must be at least 1",
                tower);
  NUMERAL_CHECK(t.hidden_size % t.num_attention_heads == 0,
                "CLIP {}: hidden_size {} is not divisible by num_attention_heads {}", tower,
                t.hidden_size, t.num_attention_heads);
  NUMERAL_CHECK(t.layer_norm_eps > 0, "CLIP {}: layer_norm_eps {} must be positive", tower,
                t.layer_norm_eps);
  NUMERAL_CHECK(t.hidden_act == "quick_gelu" || t.hidden_act == "gelu",
                "CLIP {}: hidden_act '{}' is not supported (expected quick_gelu or gelu)", tower,
                t.hidden_act);
}

void read_tower(const nlohmann::json& j, TowerConfig& t) {
  t.hidden_size = j.value("hidden_size", t.hidden_size);
  t.intermediate_size = j.value("intermediate_size", t.intermediate_size);
  t.num_hidden_layers = j.value("num_hidden_layers", t.num_hidden_layers);
  t.num_attention_heads = j.value("num_attention_heads", t.num_attention_heads);
  t.layer_norm_eps = j.value("layer_norm_eps", t.layer_norm_eps);
  t.hidden_act = j.value("hidden_act", t.hidden_act);
}

nlohmann::json tower_json(const TowerConfig& t) {
  return {{"hidden_size", t.hidden_size},
          {"intermediate_size", t.intermediate_size},
          {"num_hidden_layers", t.num_hidden_layers},
          {"num_attention_heads", t.num_attention_heads},
          {"layer_norm_eps", t.layer_norm_eps},
          {"hidden_act", t.hidden_act}};
}

// The section of a CLIPModel config: "text_config", else the older "text_config_dict".
const nlohmann::json& section(const nlohmann::json& j, const std::string& name) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  for (const auto& key : {name, name + "_dict"}) {
    if (j.contains(key) && j[key].is_object()) return j[key];
  }
  return kEmpty;
}

}  // namespace

void ClipConfig::validate() const {
  check_tower(vision, "vision_config");
  check_tower(text, "text_config");
  NUMERAL_CHECK(vision.patch_size >= 1 && vision.image_size >= vision.patch_size &&
                    vision.image_size % vision.patch_size == 0,
                "CLIP vision_config: image_size {} must be a positive multiple of patch_size {}",
                vision.image_size, vision.patch_size);
  NUMERAL_CHECK(vision.num_channels == 3 || vision.num_channels == 1,
                "CLIP vision_config: num_channels {} (expected 3)", vision.num_channels);
  NUMERAL_CHECK(text.vocab_size >= 2 && text.max_position_embeddings >= 2,
                "CLIP text_config: vocab_size {} and max_position_embeddings {} must be at least 2",
                text.vocab_size, text.max_position_embeddings);
  NUMERAL_CHECK(text.eos_token_id >= 0 && text.eos_token_id < text.vocab_size,
                "CLIP text_config: eos_token_id {} is outside the vocabulary of {}",
                text.eos_token_id, text.vocab_size);
  NUMERAL_CHECK(projection_dim >= 1, "CLIP projection_dim {} must be at least 1", projection_dim);
}

ClipConfig clip_preset(const std::string& name) {
  ClipConfig c;
  c.name = name;
  if (name == "ViT-B/32") return c;
  if (name == "ViT-B/16") {
    c.vision.patch_size = 16;
    return c;
  }
  if (name == "ViT-L/14") {
    c.vision.hidden_size = 1024;
    c.vision.intermediate_size = 4096;
    c.vision.num_hidden_layers = 24;
    c.vision.num_attention_heads = 16;
    c.vision.patch_size = 14;
    c.text.hidden_size = 768;
    c.text.intermediate_size = 3072;
    c.text.num_attention_heads = 12;
    c.projection_dim = 768;
    return c;
  }
  fail("CLIP model '{}': expected ViT-B/32, ViT-B/16 or ViT-L/14", name);
}

ClipConfig clip_config_from_json(const nlohmann::json& j, const std::string& origin) {
  NUMERAL_CHECK(j.is_object(), "{}: expected a JSON object", origin);
  const std::string type = j.value("model_type", std::string("clip"));
  NUMERAL_CHECK(type == "clip", "{}: model_type '{}' is not a CLIP model (expected \"clip\")",
                origin, type);
  ClipConfig c;
  c.name = origin;
  try {
    const auto& v = section(j, "vision_config");
    read_tower(v, c.vision);
    c.vision.image_size = v.value("image_size", c.vision.image_size);
    c.vision.patch_size = v.value("patch_size", c.vision.patch_size);
    c.vision.num_channels = v.value("num_channels", c.vision.num_channels);
    const auto& t = section(j, "text_config");
    read_tower(t, c.text);
    c.text.vocab_size = t.value("vocab_size", c.text.vocab_size);
    c.text.max_position_embeddings =
        t.value("max_position_embeddings", c.text.max_position_embeddings);
    c.text.eos_token_id = t.value("eos_token_id", c.text.eos_token_id);
    c.projection_dim = j.value("projection_dim", c.projection_dim);
    c.logit_scale_init_value = j.value("logit_scale_init_value", c.logit_scale_init_value);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: a field has the wrong type ({})", origin, e.what());
  }
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }
  return c;
}

ClipConfig read_clip_config(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  NUMERAL_CHECK(in, "{}: cannot open (a Hugging Face CLIP model directory has config.json)",
                config_json.string());
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", config_json.string(), e.what());
  }
  return clip_config_from_json(j, config_json.string());
}

nlohmann::json clip_config_to_json(const ClipConfig& c) {
  nlohmann::json vision = tower_json(c.vision);
  vision["image_size"] = c.vision.image_size;
  vision["patch_size"] = c.vision.patch_size;
  vision["num_channels"] = c.vision.num_channels;
  nlohmann::json text = tower_json(c.text);
  text["vocab_size"] = c.text.vocab_size;
  text["max_position_embeddings"] = c.text.max_position_embeddings;
  text["eos_token_id"] = c.text.eos_token_id;
  return {{"model_type", "clip"},
          {"architectures", {"CLIPModel"}},
          {"projection_dim", c.projection_dim},
          {"logit_scale_init_value", c.logit_scale_init_value},
          {"vision_config", vision},
          {"text_config", text}};
}

}  // namespace numeral::clip
