#pragma once
// GroupNorm, GELU and a residual addition in one pass over the activations: the memory-bound
// work between a ResBlock's convolutions, fused for sampling on the CPU (LibTorch runs them as
// three or four kernels, each a full pass over a tensor larger than the caches at batch 256).
#include <torch/torch.h>

namespace numeral {

// Whether the fused kernel takes x: outside autograd, float32 on the CPU, [B, C, H, W] with each
// sample's [C, H, W] contiguous (a channel slice of a contiguous buffer qualifies).
bool fusable_group_norm_gelu(const torch::Tensor& x);

// out = gelu(group_norm(x)) + residual, with `norm`'s groups, eps and affine weights and the exact
// GELU (0.5 v (1 + erf(v / sqrt 2))), the same function as `torch::gelu(norm(x)) + residual` to
// float rounding (about 1e-6; erf by a rational approximation within 1e-7). The statistics of
// each (sample, group) are taken in float64. `residual` may be undefined (nothing
// added). `out`: [B, C, H, W] with contiguous samples, x itself (in place) or another buffer
// (e.g. a skip connection's part of its joined buffer); returned. Needs fusable_group_norm_gelu
// for x, out and residual.
torch::Tensor group_norm_gelu_out(const torch::Tensor& out, const torch::Tensor& x,
                                  const torch::nn::GroupNorm& norm,
                                  const torch::Tensor& residual = {});

}  // namespace numeral
