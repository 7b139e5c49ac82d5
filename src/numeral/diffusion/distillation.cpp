#include "numeral/diffusion/distillation.h"

namespace numeral {

torch::Tensor abar_at(const NoiseSchedule& schedule, const torch::Tensor& t) {
  // abar_{-1} = 1 in front of the table, so index t + 1.
  const auto& abar = schedule.alphas_cumprod;
  const auto table = torch::cat({torch::ones({1}, abar.options()), abar});
  return table.index_select(0, t + 1).view({-1, 1, 1, 1});
}

torch::Tensor trailing_grid_point(int64_t T, int64_t n, const torch::Tensor& k) {
  // round(k T / n) with halves rounded up, as std::llround does for these positive values.
  return torch::div(k * (2 * T) + n, 2 * n, /*rounding_mode=*/"floor") - 1;
}

torch::Tensor ddim_step(const NoiseSchedule& schedule, const torch::Tensor& x_t,
                        const torch::Tensor& t, const torch::Tensor& t_prev,
                        const torch::Tensor& eps, bool clip_x0) {
  const auto abar = abar_at(schedule, t), abar_prev = abar_at(schedule, t_prev);
  auto x0 = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt();
  auto e = eps;
  if (clip_x0) {
    x0 = x0.clamp(-1, 1);
    e = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt();
  }
  return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * e;
}

torch::Tensor progressive_distillation_target(const NoiseSchedule& schedule,
                                              const Denoiser& teacher, const torch::Tensor& z_t,
                                              const torch::Tensor& t, const torch::Tensor& t_mid,
                                              const torch::Tensor& t_next, bool clip_x0) {
  torch::NoGradGuard no_grad;
  const auto z_mid = ddim_step(schedule, z_t, t, t_mid, teacher(z_t, t), clip_x0);
  const auto z_next = ddim_step(schedule, z_mid, t_mid, t_next, teacher(z_mid, t_mid), clip_x0);
  const auto abar = abar_at(schedule, t), abar_next = abar_at(schedule, t_next);
  const auto ratio = (1 - abar_next).sqrt() / (1 - abar).sqrt();  // sigma_next / sigma_t
  return (z_next - ratio * z_t) / (abar_next.sqrt() - ratio * abar.sqrt());
}

torch::Tensor truncated_snr_weight(const NoiseSchedule& schedule, const torch::Tensor& t) {
  const auto abar = schedule.alphas_cumprod.index_select(0, t);
  return (abar / (1 - abar)).clamp_min(1.0);
}

}  // namespace numeral
