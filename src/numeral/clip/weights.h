#pragma once
// CLIP weights in Hugging Face's naming. numeral's ClipModel names every parameter as HF's
// CLIPModel does, so the mapping is the identity:
//   text_model.embeddings.{token,position}_embedding.weight
//   text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2,
//     layer_norm2}.{weight,bias}
//   text_model.final_layer_norm.{weight,bias}
//   vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}
//   vision_model.{pre_layrnorm, post_layernorm}.{weight,bias} (sic: "layrnorm" is HF's spelling)
//   vision_model.encoder.layers.N.* (as the text tower)
//   visual_projection.weight, text_projection.weight, logit_scale
// HF's "*.embeddings.position_ids" buffers (int64 0..L-1, in older files) are accepted and
// ignored; any other extra tensor is an error.
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "numeral/clip/model.h"
#include "numeral/io/safetensors.h"

namespace numeral::clip {

// Copies a HF-named tensor file into the model (fp32, fp16 or bf16 in the file; the model keeps
// its own dtype and device). Throws numeral::Error naming the tensor for a missing, extra,
// mis-shaped or non-float tensor; `origin` names the file.
void load_clip_weights(ClipModel& model, const TensorFile& file, const std::string& origin);

// The model's tensors in HF naming, converted to `dtype` (float, half or bfloat16).
TensorFile clip_weights(ClipModel& model, torch::ScalarType dtype = torch::kFloat);

// Writes config.json and model.safetensors (atomic each) of a HF CLIP model directory.
void save_clip_model(const std::filesystem::path& dir, ClipModel& model,
                     torch::ScalarType dtype = torch::kFloat);

}  // namespace numeral::clip
