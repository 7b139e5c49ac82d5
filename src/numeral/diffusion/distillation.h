#pragma once
// The math of progressive distillation (Salimans & Ho 2022): per-sample DDIM steps on a trailing
// grid and the target that makes one student step equal two teacher steps. Knows nothing of the
// network beyond a Denoiser.
#include <torch/torch.h>

#include "numeral/diffusion/samplers.h"
#include "numeral/diffusion/schedule.h"

namespace numeral {

// abar at timesteps t in [-1, T), where t = -1 is the clean image (abar = 1).
torch::Tensor abar_at(const NoiseSchedule& schedule, const torch::Tensor& t);  // [B] -> [B,1,1,1]

// Point k of the n-step trailing grid: round(k T / n) - 1, so point 0 is -1 (the clean image) and
// point n is T - 1 (sampling_timesteps with spacing "trailing").
torch::Tensor trailing_grid_point(int64_t T, int64_t n, const torch::Tensor& k);  // [B] int64

// One deterministic DDIM step per sample (Song et al. 2021, eq. 12, eta = 0) from t to t_prev
// (t_prev = -1: to the clean image), given the predicted noise at (x_t, t). As the samplers do,
// the x_0 estimate is clipped to [-1, 1] when clip_x0, and the noise made consistent with it.
torch::Tensor ddim_step(const NoiseSchedule& schedule, const torch::Tensor& x_t,
                        const torch::Tensor& t, const torch::Tensor& t_prev,
                        const torch::Tensor& eps, bool clip_x0);  // [B, C, H, W]

// Progressive distillation's target (Salimans & Ho 2022, Algorithm 2): with z'' the result of two
// teacher DDIM steps t -> t_mid -> t_next from z_t, the x~ for which one DDIM step of the student
// from t to t_next lands on z'':
//   x~ = (z'' - (sigma_next / sigma_t) z_t) / (alpha_next - (sigma_next / sigma_t) alpha_t),
// with alpha = sqrt(abar), sigma = sqrt(1 - abar); x~ = z'' when t_next = -1.
torch::Tensor progressive_distillation_target(const NoiseSchedule& schedule,
                                              const Denoiser& teacher, const torch::Tensor& z_t,
                                              const torch::Tensor& t, const torch::Tensor& t_mid,
                                              const torch::Tensor& t_next,
                                              bool clip_x0);  // [B, C, H, W]

// Salimans & Ho's "truncated SNR" weighting of the x-space loss: max(abar / (1 - abar), 1).
torch::Tensor truncated_snr_weight(const NoiseSchedule& schedule,
                                   const torch::Tensor& t);  // [B] -> [B]

}  // namespace numeral
