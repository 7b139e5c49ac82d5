#include "numeral/diffusion/guidance.h"

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/common/fields.h"

namespace numeral {

torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, double w) {
  return (1 + w) * eps_cond - w * eps_uncond;
}

torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond,
                         const torch::Tensor& w) {
  return (1 + w) * eps_cond - w * eps_uncond;
}

GuidanceInterval GuidanceInterval::of(const std::vector<int64_t>& bounds) {
  if (bounds.empty()) return {};
  NUMERAL_FIELD_CHECK(bounds.size() == 2 && bounds[0] >= 0 && bounds[0] <= bounds[1], "w_interval",
                      "w_interval {}: expected two timesteps t_min,t_max with 0 <= t_min <= t_max",
                      field_value_text(bounds));
  return {bounds[0], bounds[1]};
}

std::vector<int64_t> GuidanceInterval::bounds() const {
  if (every_step()) return {};
  return {t_min, t_max};
}

Denoiser within_interval(Denoiser inside, Denoiser outside, GuidanceInterval interval) {
  if (interval.every_step()) return inside;
  return [inside, outside, interval](const torch::Tensor& x, const torch::Tensor& t) {
    const auto in = t.ge(interval.t_min) & t.le(interval.t_max);  // [B]
    if (in.all().item<bool>()) return inside(x, t);
    if (!in.any().item<bool>()) return outside(x, t);
    return torch::where(in.view({-1, 1, 1, 1}), inside(x, t), outside(x, t));
  };
}

Denoiser classifier_free_guidance(ModelFn eps_model, torch::Tensor labels, double w,
                                  GuidanceInterval interval) {
  NUMERAL_CHECK(std::isfinite(w), "guidance weight w must be a finite number, got {}", w);
  const bool unconditional = labels.lt(0).all().item<bool>();
  Denoiser conditional = [eps_model, labels](const torch::Tensor& x, const torch::Tensor& t) {
    return eps_model(x, t, labels);
  };
  if (w == 0 || unconditional) return conditional;
  auto both = torch::cat({labels, torch::full_like(labels, -1)});  // [2B]: cond, then null
  Denoiser guided = [eps_model, both, w](const torch::Tensor& x, const torch::Tensor& t) {
    auto out = eps_model(torch::cat({x, x}), torch::cat({t, t}), both);
    auto halves = out.chunk(2, /*dim=*/0);
    return guided_eps(halves[0], halves[1], w);
  };
  return within_interval(std::move(guided), std::move(conditional), interval);
}

}  // namespace numeral
