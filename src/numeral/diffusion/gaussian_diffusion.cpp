#include "numeral/diffusion/gaussian_diffusion.h"

#include <algorithm>
#include <vector>

namespace numeral {

GaussianDiffusion::GaussianDiffusion(const DiffusionConfig& config, torch::Device device)
    : config_(config),
      schedule_f64_(NoiseSchedule::from_config(config)),
      schedule_(schedule_f64_.to(device)) {}

torch::Tensor GaussianDiffusion::q_sample(const torch::Tensor& x0, const torch::Tensor& t,
                                          const torch::Tensor& noise) const {
  return extract(schedule_.sqrt_alphas_cumprod, t) * x0 +
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t) * noise;
}

torch::Tensor GaussianDiffusion::predict_x0_from_eps(const torch::Tensor& x_t,
                                                     const torch::Tensor& t,
                                                     const torch::Tensor& eps) const {
  return (x_t - extract(schedule_.sqrt_one_minus_alphas_cumprod, t) * eps) /
         extract(schedule_.sqrt_alphas_cumprod, t);
}

torch::Tensor GaussianDiffusion::v_target(const torch::Tensor& x0, const torch::Tensor& t,
                                          const torch::Tensor& noise) const {
  return extract(schedule_.sqrt_alphas_cumprod, t) * noise -
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t) * x0;
}

torch::Tensor GaussianDiffusion::eps_from_v(const torch::Tensor& x_t, const torch::Tensor& t,
                                            const torch::Tensor& v) const {
  return extract(schedule_.sqrt_alphas_cumprod, t) * v +
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t) * x_t;
}

ModelFn in_chunks(ModelFn model, int64_t max_batch) {
  if (max_batch <= 0) return model;
  return [model = std::move(model), max_batch](const torch::Tensor& x, const torch::Tensor& t,
                                               const torch::Tensor& labels) {
    const int64_t n = x.size(0);
    if (n <= max_batch) return model(x, t, labels);
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < n; i += max_batch) {
      const int64_t end = std::min(n, i + max_batch);
      out.push_back(model(x.slice(0, i, end), t.slice(0, i, end), labels.slice(0, i, end)));
    }
    return torch::cat(out);
  };
}

torch::Tensor GaussianDiffusion::output_to_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                                               const torch::Tensor& output) const {
  return config_.prediction == "v" ? eps_from_v(x_t, t, output) : output;
}

torch::Tensor GaussianDiffusion::loss_weights(const torch::Tensor& t) const {
  if (config_.min_snr_gamma <= 0) return torch::ones({t.size(0)}, schedule_.betas.options());
  const auto abar = schedule_.alphas_cumprod.index_select(0, t);
  const auto snr = abar / (1 - abar);
  const auto clipped = snr.clamp_max(config_.min_snr_gamma);
  // For eps targets the MSE in x_0 is snr * MSE in eps; for v it is (snr + 1) / ... (sec. 3.4).
  return config_.prediction == "v" ? clipped / (snr + 1) : clipped / snr;
}

torch::Tensor GaussianDiffusion::training_loss(const ModelFn& model, const torch::Tensor& x0,
                                               const torch::Tensor& labels, const torch::Tensor& t,
                                               const torch::Tensor& noise) const {
  const auto x_t = q_sample(x0, t, noise);
  const auto target = config_.prediction == "v" ? v_target(x0, t, noise) : noise;
  const auto output = model(x_t, t, labels);
  const auto per_sample = (output - target).pow(2).flatten(1).mean(1);  // [B]
  if (config_.min_snr_gamma <= 0) return per_sample.mean();
  return (per_sample * loss_weights(t)).mean();
}

}  // namespace numeral
