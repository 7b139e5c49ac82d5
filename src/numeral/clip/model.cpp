#include "numeral/clip/model.h"

#include <cmath>
#include <limits>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral::clip {

namespace F = torch::nn::functional;

AttentionImpl::AttentionImpl(int64_t hidden, int64_t heads) : heads_(heads) {
  q_proj_ = register_module("q_proj", torch::nn::Linear(hidden, hidden));
  k_proj_ = register_module("k_proj", torch::nn::Linear(hidden, hidden));
  v_proj_ = register_module("v_proj", torch::nn::Linear(hidden, hidden));
  out_proj_ = register_module("out_proj", torch::nn::Linear(hidden, hidden));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), dh = d / heads_;
  // [B, L, D] -> [B, H, L, dh]
  auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads_, dh}).transpose(1, 2); };
  // Vaswani et al. 2017, eq. 1: softmax(q k^T / sqrt(dh) + mask) v.
  const auto q = split(q_proj_(x) * (1.0 / std::sqrt(static_cast<double>(dh))));
  const auto k = split(k_proj_(x));
  const auto v = split(v_proj_(x));
  auto scores = torch::matmul(q, k.transpose(-2, -1));  // [B, H, L, L]
  if (mask.defined()) scores = scores + mask;
  const auto out = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, L, dh]
  return out_proj_(out.transpose(1, 2).reshape({b, l, d}));
}

MlpImpl::MlpImpl(const TowerConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
  fc1_ = register_module("fc1", torch::nn::Linear(c.hidden_size, c.intermediate_size));
  fc2_ = register_module("fc2", torch::nn::Linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1_(x);
  // CLIP's quick-GELU (OpenAI's QuickGELU): x * sigmoid(1.702 x).
  h = quick_gelu_ ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return fc2_(h);
}

EncoderLayerImpl::EncoderLayerImpl(const TowerConfig& c) {
  const auto norm = torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps);
  self_attn_ = register_module("self_attn", Attention(c.hidden_size, c.num_attention_heads));
  layer_norm1_ = register_module("layer_norm1", torch::nn::LayerNorm(norm));
  mlp_ = register_module("mlp", Mlp(c));
  layer_norm2_ = register_module("layer_norm2", torch::nn::LayerNorm(norm));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const auto h = x + self_attn_(layer_norm1_(x), mask);
  return h + mlp_(layer_norm2_(h));
}

EncoderImpl::EncoderImpl(const TowerConfig& c) {
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(EncoderLayer(c));
}

torch::Tensor EncoderImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (const auto& layer : *layers_) x = layer->as<EncoderLayer>()->forward(x, mask);
  return x;
}

VisionTransformerImpl::VisionTransformerImpl(const VisionConfig& c) : config_(c) {
  const int64_t d = c.hidden_size;
  embeddings_ = register_module("embeddings", std::make_shared<torch::nn::Module>());
  class_embedding_ = embeddings_->register_parameter("class_embedding", torch::randn({d}));
  patch_embedding_ = embeddings_->register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, d, c.patch_size)
                                               .stride(c.patch_size)
                                               .bias(false)));
  position_embedding_ = embeddings_->register_module("position_embedding",
                                                     torch::nn::Embedding(c.num_patches() + 1, d));
  const auto norm = torch::nn::LayerNormOptions({d}).eps(c.layer_norm_eps);
  pre_layrnorm_ = register_module("pre_layrnorm", torch::nn::LayerNorm(norm));
  encoder_ = register_module("encoder", Encoder(c));
  post_layernorm_ = register_module("post_layernorm", torch::nn::LayerNorm(norm));
}

TowerOutput VisionTransformerImpl::forward(const torch::Tensor& pixel_values) {
  const auto& c = config_;
  NUMERAL_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == c.num_channels &&
                    pixel_values.size(2) == c.image_size && pixel_values.size(3) == c.image_size,
                "CLIP image encoder: expected pixel values [B, {}, {}, {}], got {}", c.num_channels,
                c.image_size, c.image_size, pixel_values.sizes());
  const int64_t b = pixel_values.size(0);
  // Dosovitskiy et al. 2021, eq. 1: [class; patches E] + positions.
  const auto patches = patch_embedding_(pixel_values).flatten(2).transpose(1, 2);  // [B, N, D]
  const auto cls = class_embedding_.view({1, 1, -1}).expand({b, 1, -1});
  auto x = torch::cat({cls.to(patches.dtype()), patches}, 1) + position_embedding_->weight;
  x = encoder_(pre_layrnorm_(x));
  return {x, post_layernorm_(x.select(1, 0))};
}

TextTransformerImpl::TextTransformerImpl(const TextConfig& c) : config_(c) {
  embeddings_ = register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding_ = embeddings_->register_module(
      "token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding_ = embeddings_->register_module(
      "position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  encoder_ = register_module("encoder", Encoder(c));
  final_layer_norm_ = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

torch::Tensor causal_mask(int64_t length, torch::TensorOptions options) {
  return torch::full({length, length}, -std::numeric_limits<float>::infinity(), options).triu(1);
}

torch::Tensor TextTransformerImpl::eos_positions(const torch::Tensor& ids) const {
  // HF's legacy configs (eos_token_id 2) pool at argmax(ids): the end token has the highest id.
  if (config_.eos_token_id == 2) return ids.argmax(-1);
  const auto is_eos = ids.eq(config_.eos_token_id);
  NUMERAL_CHECK(is_eos.any(-1).all().item<bool>(),
                "CLIP text encoder: a sequence has no end-of-text token (id {})",
                config_.eos_token_id);
  // The first occurrence: argmax over int finds the first maximum.
  return is_eos.to(torch::kInt).argmax(-1);
}

TowerOutput TextTransformerImpl::forward(const torch::Tensor& ids) {
  const auto& c = config_;
  NUMERAL_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kLong,
                "CLIP text encoder: expected token ids [B, L] int64, got {} {}", ids.sizes(),
                c10::toString(ids.scalar_type()));
  const int64_t l = ids.size(1);
  NUMERAL_CHECK(l >= 1 && l <= c.max_position_embeddings,
                "CLIP text encoder: {} tokens, expected 1 to {}", l, c.max_position_embeddings);
  NUMERAL_CHECK(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < c.vocab_size,
                "CLIP text encoder: token ids must lie in [0, {})", c.vocab_size);
  auto x = token_embedding_(ids) + position_embedding_->weight.slice(0, 0, l);
  x = final_layer_norm_(encoder_(x, causal_mask(l, x.options())));
  const auto rows = torch::arange(ids.size(0), ids.options());
  return {x, x.index({rows, eos_positions(ids)})};
}

ClipModelImpl::ClipModelImpl(const ClipConfig& c) : config_(c) {
  c.validate();
  text_model_ = register_module("text_model", TextTransformer(c.text));
  vision_model_ = register_module("vision_model", VisionTransformer(c.vision));
  visual_projection_ = register_module(
      "visual_projection",
      torch::nn::Linear(
          torch::nn::LinearOptions(c.vision.hidden_size, c.projection_dim).bias(false)));
  text_projection_ = register_module(
      "text_projection",
      torch::nn::Linear(
          torch::nn::LinearOptions(c.text.hidden_size, c.projection_dim).bias(false)));
  logit_scale_ = register_parameter("logit_scale", torch::tensor(c.logit_scale_init_value));
}

torch::Tensor ClipModelImpl::encode_image(const torch::Tensor& pixel_values) {
  return visual_projection_(vision_model_(pixel_values).pooled);
}

torch::Tensor ClipModelImpl::encode_text(const torch::Tensor& input_ids) {
  return text_projection_(text_model_(input_ids).pooled);
}

torch::Tensor ClipModelImpl::logits_per_image(const torch::Tensor& image_embeds,
                                              const torch::Tensor& text_embeds) const {
  const auto i = F::normalize(image_embeds, F::NormalizeFuncOptions().dim(-1));
  const auto t = F::normalize(text_embeds, F::NormalizeFuncOptions().dim(-1));
  return logit_scale_.exp() * torch::matmul(i, t.t());
}

}  // namespace numeral::clip
