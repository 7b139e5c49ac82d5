#include "numeral/diffusion/guidance.h"

#include <cmath>

#include "numeral/common/error.h"

namespace numeral {

torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, double w) {
  return (1 + w) * eps_cond - w * eps_uncond;
}

torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond,
                         const torch::Tensor& w) {
  return (1 + w) * eps_cond - w * eps_uncond;
}

Denoiser classifier_free_guidance(ModelFn eps_model, torch::Tensor labels, double w) {
  NUMERAL_CHECK(std::isfinite(w), "guidance weight w must be a finite number, got {}", w);
  const bool unconditional = labels.lt(0).all().item<bool>();
  if (w == 0 || unconditional) {
    return [eps_model, labels](const torch::Tensor& x, const torch::Tensor& t) {
      return eps_model(x, t, labels);
    };
  }
  auto both = torch::cat({labels, torch::full_like(labels, -1)});  // [2B]: cond, then null
  return [eps_model, both, w](const torch::Tensor& x, const torch::Tensor& t) {
    auto out = eps_model(torch::cat({x, x}), torch::cat({t, t}), both);
    auto halves = out.chunk(2, /*dim=*/0);
    return guided_eps(halves[0], halves[1], w);
  };
}

}  // namespace numeral
