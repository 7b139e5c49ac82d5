#include "numeral/diffusion/learned_schedule.h"

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {
namespace {

// The inverse of softplus: log(exp(y) - 1), for y > 0.
torch::Tensor inverse_softplus(const torch::Tensor& y) {
  return torch::log(torch::expm1(y));
}

}  // namespace

LearnedScheduleImpl::LearnedScheduleImpl(const torch::Tensor& alphas_cumprod) {
  NUMERAL_CHECK(alphas_cumprod.dim() == 1 && alphas_cumprod.size(0) >= 2,
                "learned schedule: expected [T] alphas_cumprod with T >= 2, got {}",
                alphas_cumprod.sizes());
  const auto abar = alphas_cumprod.to(torch::kCPU, torch::kDouble);
  NUMERAL_CHECK(abar.gt(0).all().item<bool>() && abar.lt(1).all().item<bool>(),
                "learned schedule: alphas_cumprod must lie in (0, 1) (a zero terminal SNR has no "
                "finite log SNR to learn)");
  const auto gamma = torch::log1p(-abar) - torch::log(abar);  // -log SNR
  const auto steps = gamma.slice(0, 1) - gamma.slice(0, 0, -1);
  NUMERAL_CHECK(steps.gt(0).all().item<bool>(),
                "learned schedule: the starting schedule must be strictly decreasing in abar");
  // Only the shape matters (increments are normalised), so start them at mean 1.
  theta_ = register_parameter("theta", inverse_softplus(steps / steps.mean()));
  gamma_first_ = register_buffer("gamma_first", gamma[0].clone());
  gamma_last_ = register_buffer("gamma_last", gamma[-1].clone());
}

torch::Tensor LearnedScheduleImpl::gamma() const {
  const auto increments = torch::nn::functional::softplus(theta_);
  const auto cumulative =
      torch::cat({torch::zeros({1}, increments.options()), torch::cumsum(increments, 0)});
  const auto fraction = cumulative / cumulative[-1];  // 0 .. 1, exactly 1 at the end
  return gamma_first_ + (gamma_last_ - gamma_first_) * fraction;
}

torch::Tensor LearnedScheduleImpl::alphas_cumprod() const {
  return torch::sigmoid(-gamma());
}

torch::Tensor LearnedScheduleImpl::variance_objective(const torch::Tensor& t,
                                                      const torch::Tensor& mse) const {
  const auto snr = torch::exp(-gamma());                      // [T]
  const auto weight = snr.slice(0, 0, -1) - snr.slice(0, 1);  // [T - 1]: t = 1..T-1
  const auto cpu_t = t.to(torch::kCPU, torch::kLong);
  const auto used = cpu_t.ge(1);
  if (!used.any().item<bool>()) return (theta_ * 0).sum();
  const auto w = weight.index_select(0, cpu_t.masked_select(used) - 1);
  const auto m = mse.detach().to(torch::kCPU, torch::kDouble).masked_select(used);
  return (w * m).pow(2).mean();
}

}  // namespace numeral
