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
    const int64_t count = in.sum().item<int64_t>();               // one host sync a step
    if (count == in.size(0)) return inside(x, t);
    if (count == 0) return outside(x, t);
    return torch::where(in.view({-1, 1, 1, 1}), inside(x, t), outside(x, t));
  };
}

Denoiser classifier_free_guidance(ModelFn eps_model, torch::Tensor labels, double w,
                                  GuidanceInterval interval, Autoguide autoguide) {
  NUMERAL_CHECK(std::isfinite(w), "guidance weight w must be a finite number, got {}", w);
  NUMERAL_CHECK(std::isfinite(autoguide.w), "autoguidance weight must be a finite number, got {}",
                autoguide.w);
  NUMERAL_CHECK(autoguide.w == 0 || autoguide.guide_model,
                "autoguidance weight {} without a guide model", autoguide.w);
  const bool unconditional = labels.lt(0).all().item<bool>();
  if (unconditional) w = 0;
  Denoiser conditional = [eps_model, labels](const torch::Tensor& x, const torch::Tensor& t) {
    return eps_model(x, t, labels);
  };
  if (w == 0 && autoguide.w == 0) return conditional;
  auto both = torch::cat({labels, torch::full_like(labels, -1)});  // [2B]: cond, then null
  Denoiser guided = [eps_model, labels, both, w, autoguide](const torch::Tensor& x,
                                                            const torch::Tensor& t) {
    torch::Tensor eps;
    torch::Tensor cond;
    if (w != 0) {
      auto halves = eps_model(torch::cat({x, x}), torch::cat({t, t}), both).chunk(2, /*dim=*/0);
      cond = halves[0];
      eps = guided_eps(cond, halves[1], w);
    } else {
      cond = eps_model(x, t, labels);
      eps = cond;
    }
    if (autoguide.w == 0) return eps;
    return eps + autoguide.w * (cond - autoguide.guide_model(x, t, labels));
  };
  return within_interval(std::move(guided), std::move(conditional), interval);
}

}  // namespace numeral
