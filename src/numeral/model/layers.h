#pragma once
// The U-Net's building blocks (LibTorch modules: XImpl + TORCH_MODULE).
#include <torch/torch.h>

namespace numeral {

// Sinusoidal features of the timestep (Vaswani et al. 2017, sec. 3.5; as in DDPM):
// emb[i] = sin(t * w_i), emb[half + i] = cos(t * w_i), w_i = 10000^(-i / (half - 1)).
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim);  // [B] -> [B, dim]

// conv(x) in x's floating type: a float32 layer on a bfloat16 x (bfloat16 sampling, where the
// weights stay float32 and are rounded for each call) convolves in bfloat16. For the U-Net's
// stride-1 "same" convolutions (padding (k - 1) / 2).
torch::Tensor convolve(torch::nn::Conv2d& conv, const torch::Tensor& x);

// Whether LibTorch runs a bfloat16 channels-last convolution on `device` (tried once per device
// type, then remembered): on a CPU this depends on its instructions and on the oneDNN build
// (e.g. a oneDNN limited to AVX2 by ONEDNN_MAX_CPU_ISA refuses it).
bool bfloat16_convolutions_run(const torch::Device& device);

// A two-layer MLP (Linear, GELU, Linear): turns a time feature or a one-hot label into a
// per-channel embedding. zero_out starts the last layer at zero, so that the block adds nothing
// until trained (a new input grafted onto a trained network).
class EmbedBlockImpl : public torch::nn::Module {
 public:
  EmbedBlockImpl(int64_t in_features, int64_t hidden, int64_t out_features, bool zero_out = false);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in] -> [B, out]

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(EmbedBlock);

// Two (3x3 convolution, GroupNorm, GELU) layers with a residual connection (1x1 convolution when
// the width changes).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups);
  // [B, in, H, W] -> [B, out, H, W]. Given `out` (a [B, out, H, W] view, e.g. one part of a skip
  // connection's joined buffer; without autograd only), the result is written there and returned.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& out = {});

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d shortcut_{nullptr};  // null when in == out
};
TORCH_MODULE(ResBlock);

// Encoder level: a ResBlock whose output is kept as the skip, then halving the resolution.
class DownBlockImpl : public torch::nn::Module {
 public:
  DownBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups);
  // Returns {downsampled [B, out, H/2, W/2], skip [B, out, H, W]}; the skip is written into
  // `skip_out` when given (as ResBlock's `out`).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x,
                                                  const torch::Tensor& skip_out = {});

 private:
  ResBlock block_{nullptr};
};
TORCH_MODULE(DownBlock);

// Decoder level: doubles the resolution (a 2x2 stride-2 transposed convolution), concatenates the
// matching skip, then a ResBlock.
class UpBlockImpl : public torch::nn::Module {
 public:
  UpBlockImpl(int64_t in_channels, int64_t skip_channels, int64_t out_channels, int64_t groups);
  // x [B, in, H, W], skip [B, skip, 2H, 2W] -> [B, out, 2H, 2W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& skip);
  // The same without the concatenation (without autograd only): `joined` [B, in + skip, 2H, 2W]
  // already holds the skip in its last `skip` channels; the up-sampled x is written into the first.
  torch::Tensor forward_joined(const torch::Tensor& x, const torch::Tensor& joined);
  // The transposed convolution [B, in, H, W] -> [B, in, 2H, 2W], computed as what it is: a 1x1
  // convolution to 4 x in channels (one per output pixel of each 2x2 patch) and a pixel shuffle.
  // Same weights and result as up_->forward(x), but on the convolution (oneDNN) path instead of
  // ATen's reference kernel for transposed convolutions, which is several times slower on a CPU.
  // Given `out` (a [B, in, 2H, 2W] view; without autograd only), the result is written there.
  torch::Tensor upsample(const torch::Tensor& x, const torch::Tensor& out = {});

 private:
  torch::nn::ConvTranspose2d up_{nullptr};  // holds the weights; upsample() computes it
  ResBlock block_{nullptr};
};
TORCH_MODULE(UpBlock);

// Multi-head self-attention over the pixels of a feature map, with a residual connection.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t channels, int64_t heads, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] -> [B, C, H, W]

 private:
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::MultiheadAttention attention_{nullptr};
};
TORCH_MODULE(SelfAttention);

}  // namespace numeral
