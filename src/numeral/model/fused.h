#pragma once
// GroupNorm, GELU and a residual addition in one pass over the activations: the memory-bound
// work between a ResBlock's convolutions, fused on the CPU (LibTorch runs them as three or four
// kernels, each a full pass over a tensor larger than the caches at batch 256, and as many again
// for their gradients).
#include <torch/torch.h>

namespace numeral {

// Whether the fused kernel takes x: outside autograd, float32 on the CPU, [B, C, H, W] with each
// sample's [C, H, W] contiguous (a channel slice of a contiguous buffer qualifies) or channels-last
// (each pixel's channels contiguous: a channels-last tensor or a channel slice of one); or
// bfloat16 and channels-last (computed in float, rounded once on writing). With `like`: and `like`
// too, in the same layout and type (the kernel's x, out and residual must share them).
bool fusable_group_norm_gelu(const torch::Tensor& x, const torch::Tensor& like = {});

// out = gelu(group_norm(x)) + residual, with `norm`'s groups, eps and affine weights and the exact
// GELU (0.5 v (1 + erf(v / sqrt 2))), the same function as `torch::gelu(norm(x)) + residual` to
// float rounding (about 1e-6; erf by a rational approximation within 1e-7). The statistics of
// each (sample, group) are taken in float64. `residual` may be undefined (nothing added). `out`:
// [B, C, H, W], x itself (in place) or another buffer (e.g. a skip connection's part of its joined
// buffer); returned. Needs fusable_group_norm_gelu for x, out and residual, all in one layout.
torch::Tensor group_norm_gelu_out(const torch::Tensor& out, const torch::Tensor& x,
                                  const torch::nn::GroupNorm& norm,
                                  const torch::Tensor& residual = {});

// torch::gelu(norm(x)) for training: on the CPU in float32 (with an affine norm) one autograd node
// whose forward is the kernel above and whose backward takes GELU's and GroupNorm's gradients
// together in two passes over each (sample, group) (gelu' with a Cephes-style exp within a few
// ulp); it saves x and the statistics only, where the two layers save x and the normalised x.
// A channels-last x (channels-last training) stays so: the output and dx too, with kernels that
// run along each pixel's channels; any other x is made contiguous. Anywhere else (not float32 on
// the CPU, or no affine weights), the two layers. x: [B, C, H, W].
torch::Tensor group_norm_gelu(const torch::Tensor& x, const torch::nn::GroupNorm& norm);

}  // namespace numeral
