#pragma once
// The noise predictor: forward(x_t, t, label) -> predicted noise (or v). It knows nothing of
// schedules or sampling.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "numeral/model/config.h"
#include "numeral/model/layers.h"

namespace numeral {

// The label that means "no class": the unconditional half of classifier-free guidance. Its
// one-hot vector is all zeros (the null context).
constexpr int64_t kNullLabel = -1;

// Names and output shapes of the blocks a forward pass went through, for `numeral model summary`.
using ShapeTrace = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// A U-Net: an input ResBlock, DownBlocks keeping skips, a bottleneck (optionally with
// self-attention), UpBlocks that concatenate the skips, and an output convolution. A sinusoidal
// time embedding and a class EmbedBlock are injected at the bottleneck and after every UpBlock:
// h <- h * (1 + class_embedding) + time_embedding. A student (config.guidance_input) adds a
// guidance embedding of w to the time embedding.
class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);

  // x_t [B, C, H, W] float, t [B] int64 in [0, T), labels [B] int64 in [0, K) or kNullLabel,
  // guidance [B] float (w; only for a model with config.guidance_input) -> [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t,
                        const torch::Tensor& labels, const torch::Tensor& guidance = {},
                        ShapeTrace* trace = nullptr);

  const UNetConfig& config() const { return config_; }

  // On the CPU, without attention, the network runs channels-last (NHWC) inside: the same function
  // (to float rounding), faster (BENCHMARKS.md). false runs it NCHW throughout, to compare the two
  // in one run (bench_step, tests). Not saved with the weights.
  void set_channels_last(bool on) { channels_last_ = on; }
  // Whether a call on `device` runs channels-last.
  bool runs_channels_last(const torch::Device& device) const;

 private:
  UNetConfig config_;
  bool channels_last_ = true;
  ResBlock input_{nullptr};
  torch::nn::ModuleList down_, up_, time_embed_, class_embed_;
  torch::nn::ModuleList guidance_embed_{nullptr};  // config.guidance_input only
  ResBlock bottleneck_{nullptr};
  SelfAttention attention_{nullptr};
  // config.attention_at: after DownBlock i, after UpBlock j (null where none).
  std::vector<SelfAttention> down_attention_, up_attention_;
  torch::nn::Conv2d out_conv1_{nullptr}, out_conv2_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
};
TORCH_MODULE(UNet);

// The guidance weight w is embedded as sinusoidal features of w * kGuidanceFeatureScale, so that
// the weights in use (0 to a few) span a range of phases like the timesteps' 0 to T.
constexpr double kGuidanceFeatureScale = 100.0;

// Floating-point operations of one forward pass per image, counted from the config: 2 per
// multiply-add in the convolutions, transposed convolutions, linear layers and attention products
// (norms, activations, pooling and additions, a few percent, are left out). A training step costs
// about 3 times this (forward, and backward for inputs and weights).
int64_t forward_flops(const UNetConfig& config);

// Number of trainable parameters.
int64_t parameter_count(const torch::nn::Module& module);

// The one-hot class vectors; kNullLabel rows are all zeros.
torch::Tensor one_hot_labels(const torch::Tensor& labels, int64_t num_classes);  // [B] -> [B, K]

// Copies every parameter and buffer of `from` into `to`, a model with the same config but as many
// or more classes: the class embeddings' first layers take `from`'s columns for its classes, and
// the columns of the added classes keep `to`'s initialisation. Old labels and the null label then
// give bit-identical outputs. Checks every shape before copying; errors name `origin` and the first
// mismatch, and leave `to` unchanged.
void load_extending_classes(UNetImpl& to, const UNetImpl& from, const std::string& origin);

// A human-readable table of the blocks, their output shapes and the parameter count, made by
// tracing one forward pass of a batch of one.
std::string model_summary(UNet& model);

}  // namespace numeral
