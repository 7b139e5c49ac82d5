#pragma once
// CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
// Supervision") in LibTorch: a ViT image encoder and a causal text transformer, projected into
// one embedding space. Every module and parameter carries the name Hugging Face's CLIPModel gives
// it (vision_model.encoder.layers.0.self_attn.q_proj.weight, ...), so a HF model.safetensors maps
// onto named_parameters() one to one (clip/weights.h).
#include <torch/torch.h>

#include "numeral/clip/config.h"

namespace numeral::clip {

// Multi-head self-attention (q, k, v and out projections with biases); an optional additive mask
// [L, L] (0 or -inf) is added to the scores before the softmax.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t hidden, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});  // [B, L, D]

 private:
  int64_t heads_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(Attention);

// fc1, the activation (quick-GELU x * sigmoid(1.702 x), or GELU), fc2.
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const TowerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // [B, L, D] -> [B, L, D]

 private:
  bool quick_gelu_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Mlp);

// A pre-LN transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x)).
class EncoderLayerImpl : public torch::nn::Module {
 public:
  explicit EncoderLayerImpl(const TowerConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});  // [B, L, D]

 private:
  Attention self_attn_{nullptr};
  torch::nn::LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(EncoderLayer);

// The stack of layers ("encoder.layers.N" in HF names).
class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const TowerConfig& config);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {});  // [B, L, D]

 private:
  torch::nn::ModuleList layers_{nullptr};
};
TORCH_MODULE(Encoder);

// A tower's outputs: every position's final hidden state and the pooled one.
struct TowerOutput {
  torch::Tensor last_hidden_state;  // [B, L, D]
  torch::Tensor pooled;             // [B, D]
};

// Patch embedding (a stride-p convolution without bias), class token, learned positions,
// pre-LN, the encoder; pooled = post_layernorm of the class token.
class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const VisionConfig& config);
  // pixel_values [B, 3, S, S], preprocessed (clip/preprocess.h).
  TowerOutput forward(const torch::Tensor& pixel_values);

 private:
  VisionConfig config_;
  // "embeddings": class_embedding, patch_embedding, position_embedding.
  std::shared_ptr<torch::nn::Module> embeddings_;
  torch::Tensor class_embedding_;                     // [D]
  torch::nn::Conv2d patch_embedding_{nullptr};        // [D, 3, p, p]
  torch::nn::Embedding position_embedding_{nullptr};  // [patches + 1, D]
  torch::nn::LayerNorm pre_layrnorm_{nullptr};        // sic: HF's name
  Encoder encoder_{nullptr};
  torch::nn::LayerNorm post_layernorm_{nullptr};
};
TORCH_MODULE(VisionTransformer);

// Token and position embeddings, the encoder under a causal mask, the final LayerNorm; pooled =
// the hidden state at the end-of-text token (its first occurrence, or argmax(ids) for the legacy
// eos_token_id 2, as HF does).
class TextTransformerImpl : public torch::nn::Module {
 public:
  explicit TextTransformerImpl(const TextConfig& config);
  TowerOutput forward(const torch::Tensor& input_ids);  // [B, L] int64, L <= context length

  // Where each sequence's end-of-text token is: [B, L] int64 -> [B] int64.
  torch::Tensor eos_positions(const torch::Tensor& input_ids) const;

 private:
  TextConfig config_;
  std::shared_ptr<torch::nn::Module> embeddings_;  // "embeddings": token and position
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  Encoder encoder_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(TextTransformer);

// The additive causal mask of a text transformer: 0 on and below the diagonal, -inf above.
torch::Tensor causal_mask(int64_t length, torch::TensorOptions options = {});  // [L, L]

// Both towers, their projections (no bias) and the learned temperature logit_scale.
class ClipModelImpl : public torch::nn::Module {
 public:
  explicit ClipModelImpl(const ClipConfig& config);

  torch::Tensor encode_image(const torch::Tensor& pixel_values);  // [B, 3, S, S] -> [B, P]
  torch::Tensor encode_text(const torch::Tensor& input_ids);      // [B, L] -> [B, P]
  // exp(logit_scale) * cos(image, text) for every pair: [Bi, P], [Bt, P] -> [Bi, Bt].
  torch::Tensor logits_per_image(const torch::Tensor& image_embeds,
                                 const torch::Tensor& text_embeds) const;

  const ClipConfig& config() const { return config_; }
  VisionTransformer vision_model() const { return vision_model_; }
  TextTransformer text_model() const { return text_model_; }

 private:
  ClipConfig config_;
  VisionTransformer vision_model_{nullptr};
  TextTransformer text_model_{nullptr};
  torch::nn::Linear visual_projection_{nullptr}, text_projection_{nullptr};
  torch::Tensor logit_scale_;  // []
};
TORCH_MODULE(ClipModel);

}  // namespace numeral::clip
