#include "numeral/diffusion/schedule.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"

namespace numeral {

void DiffusionConfig::validate() const {
  check_fields(*this);
  NUMERAL_FIELD_CHECK(min_snr_gamma == 0 || prediction != Prediction::edm, "min_snr_gamma",
                      "min_snr_gamma weights eps or v targets; prediction edm has its own "
                      "weighting");
  NUMERAL_FIELD_CHECK(!(zero_terminal_snr && schedule == Schedule::learned), "zero_terminal_snr",
                      "zero_terminal_snr: a learned schedule needs a finite terminal SNR");
  NUMERAL_FIELD_CHECK(!(zero_terminal_snr && prediction == Prediction::eps), "zero_terminal_snr",
                      "zero_terminal_snr makes x_0 unrecoverable from eps at t = T; use prediction "
                      "v with it");
}

void to_json(nlohmann::json& j, const DiffusionConfig& c) {
  j = fields_to_json(c);
}

void from_json(const nlohmann::json& j, DiffusionConfig& c) {
  fields_from_json(j, c, {"diffusion config"});
}

torch::Tensor make_betas(const DiffusionConfig& config) {
  config.validate();
  const auto T = config.timesteps;
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  if (config.schedule == Schedule::linear || config.schedule == Schedule::linear_textbook) {
    const double scale =
        config.schedule == Schedule::linear ? 1000.0 / static_cast<double>(T) : 1.0;
    return torch::linspace(scale * 1e-4, std::min(scale * 0.02, 0.999), T, f64);
  }
  // Cosine (Nichol & Dhariwal 2021, eq. 17): abar(t) = f(t) / f(0),
  // f(t) = cos((t/T + s) / (1 + s) * pi/2)^2, beta_t = 1 - abar(t)/abar(t-1), clipped at 0.999.
  const double s = config.cosine_s;
  auto f = [&](double t) {
    const double angle = (t / static_cast<double>(T) + s) / (1 + s) * M_PI / 2;
    return std::cos(angle) * std::cos(angle);
  };
  auto betas = torch::empty({T}, f64);
  auto* b = betas.data_ptr<double>();
  for (int64_t t = 0; t < T; ++t) b[t] = std::min(1.0 - f(t + 1) / f(t), 0.999);
  return betas;
}

torch::Tensor rescale_zero_terminal_snr(const torch::Tensor& betas) {
  auto sqrt_abar = torch::cumprod(1 - betas, 0).sqrt();
  const auto first = sqrt_abar[0].clone(), last = sqrt_abar[-1].clone();
  sqrt_abar = (sqrt_abar - last) * first / (first - last);  // first kept, last -> 0
  auto abar = sqrt_abar.pow(2);
  auto alphas = torch::cat({abar.slice(0, 0, 1), abar.slice(0, 1) / abar.slice(0, 0, -1)});
  return 1 - alphas;
}

NoiseSchedule NoiseSchedule::from_config(const DiffusionConfig& config) {
  auto betas = make_betas(config);
  if (config.zero_terminal_snr) betas = rescale_zero_terminal_snr(betas);
  return from_betas(betas);
}

NoiseSchedule NoiseSchedule::from_alphas_cumprod(const torch::Tensor& alphas_cumprod) {
  const auto abar = alphas_cumprod.detach().to(torch::kCPU, torch::kDouble);
  const auto alphas =
      torch::cat({abar.slice(0, 0, 1), abar.slice(0, 1) / abar.slice(0, 0, -1)});  // [T]
  return from_betas(1 - alphas);
}

NoiseSchedule NoiseSchedule::from_betas(const torch::Tensor& betas) {
  NoiseSchedule s;
  s.T = betas.size(0);
  s.betas = betas;
  s.alphas = 1 - betas;
  s.alphas_cumprod = torch::cumprod(s.alphas, 0);
  s.alphas_cumprod_prev =
      torch::cat({torch::ones({1}, betas.options()), s.alphas_cumprod.slice(0, 0, -1)});
  s.sqrt_alphas_cumprod = s.alphas_cumprod.sqrt();
  s.sqrt_one_minus_alphas_cumprod = (1 - s.alphas_cumprod).sqrt();
  // DDPM eq. 7: q(x_{t-1} | x_t, x_0) = N(mu~, beta~ I).
  s.posterior_variance = betas * (1 - s.alphas_cumprod_prev) / (1 - s.alphas_cumprod);
  auto clipped = s.posterior_variance.clone();
  clipped[0] = s.posterior_variance[1];
  s.posterior_log_variance_clipped = clipped.log();
  s.posterior_mean_coef1 = betas * s.alphas_cumprod_prev.sqrt() / (1 - s.alphas_cumprod);
  s.posterior_mean_coef2 = (1 - s.alphas_cumprod_prev) * s.alphas.sqrt() / (1 - s.alphas_cumprod);
  return s;
}

NoiseSchedule NoiseSchedule::to(torch::Device device) const {
  auto cast = [&](const torch::Tensor& x) { return x.to(device, torch::kFloat); };
  NoiseSchedule s;
  s.T = T;
  s.betas = cast(betas);
  s.alphas = cast(alphas);
  s.alphas_cumprod = cast(alphas_cumprod);
  s.alphas_cumprod_prev = cast(alphas_cumprod_prev);
  s.sqrt_alphas_cumprod = cast(sqrt_alphas_cumprod);
  s.sqrt_one_minus_alphas_cumprod = cast(sqrt_one_minus_alphas_cumprod);
  s.posterior_variance = cast(posterior_variance);
  s.posterior_log_variance_clipped = cast(posterior_log_variance_clipped);
  s.posterior_mean_coef1 = cast(posterior_mean_coef1);
  s.posterior_mean_coef2 = cast(posterior_mean_coef2);
  return s;
}

torch::Tensor NoiseSchedule::log_snr() const {
  return alphas_cumprod.log() - (1 - alphas_cumprod).log();
}

torch::Tensor extract(const torch::Tensor& coefficient, const torch::Tensor& t) {
  return coefficient.index_select(0, t.to(coefficient.device())).view({-1, 1, 1, 1});
}

}  // namespace numeral
