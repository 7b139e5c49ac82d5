#include "numeral/clip/weights.h"

#include <set>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"

namespace numeral::clip {
namespace {

bool is_position_ids(const std::string& name) {
  const std::string suffix = "embeddings.position_ids";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_float(torch::ScalarType t) {
  return t == torch::kFloat || t == torch::kHalf || t == torch::kBFloat16 || t == torch::kDouble;
}

}  // namespace

void load_clip_weights(ClipModel& model, const TensorFile& file, const std::string& origin) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    auto& param = item.value();
    const auto found = file.tensors.find(name);
    NUMERAL_CHECK(found != file.tensors.end(),
                  "{}: tensor '{}' is missing (shape {} expected for this config)", origin, name,
                  param.sizes());
    const auto& t = found->second;
    NUMERAL_CHECK(is_float(t.scalar_type()),
                  "{}: tensor '{}' has dtype {}; expected F32, F16 or BF16", origin, name,
                  c10::toString(t.scalar_type()));
    NUMERAL_CHECK(t.sizes() == param.sizes(),
                  "{}: tensor '{}' has shape {} but this config expects {} (a config.json from "
                  "another model?)",
                  origin, name, t.sizes(), param.sizes());
    param.copy_(t.to(param.dtype()));
    used.insert(name);
  }
  for (const auto& [name, t] : file.tensors) {
    NUMERAL_CHECK(used.count(name) || is_position_ids(name),
                  "{}: tensor '{}' (shape {}) is not part of a CLIP model of this config", origin,
                  name, t.sizes());
  }
}

TensorFile clip_weights(ClipModel& model, torch::ScalarType dtype) {
  NUMERAL_CHECK(dtype == torch::kFloat || dtype == torch::kHalf || dtype == torch::kBFloat16,
                "CLIP weights: dtype {} (expected float32, float16 or bfloat16)",
                c10::toString(dtype));
  TensorFile file;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) {
    file.tensors[item.key()] = item.value().detach().to(torch::kCPU, dtype).contiguous();
  }
  file.metadata["format"] = "pt";  // as transformers writes it
  return file;
}

void save_clip_model(const std::filesystem::path& dir, ClipModel& model, torch::ScalarType dtype) {
  ensure_writable_dir(dir);
  write_file_atomic(dir / "config.json", clip_config_to_json(model->config()).dump(2) + "\n");
  save_safetensors(dir / "model.safetensors", clip_weights(model, dtype));
}

}  // namespace numeral::clip
