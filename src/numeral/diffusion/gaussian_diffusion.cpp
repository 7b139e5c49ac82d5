#include "numeral/diffusion/gaussian_diffusion.h"

#include <algorithm>
#include <vector>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {

GaussianDiffusion::GaussianDiffusion(const DiffusionConfig& config, torch::Device device)
    : config_(config),
      device_(device),
      schedule_f64_(NoiseSchedule::from_config(config)),
      schedule_(schedule_f64_.to(device)) {
  if (config_.schedule == Schedule::learned)
    learned_ = LearnedSchedule(schedule_f64_.alphas_cumprod);
}

std::vector<torch::Tensor> GaussianDiffusion::parameters() const {
  return learned_ ? learned_->parameters() : std::vector<torch::Tensor>{};
}

std::map<std::string, torch::Tensor> GaussianDiffusion::schedule_state() const {
  std::map<std::string, torch::Tensor> state;
  if (!learned_) return state;
  for (const auto& p : learned_->named_parameters()) {
    state["schedule." + p.key()] = p.value().detach().clone();
  }
  for (const auto& b : learned_->named_buffers()) {
    state["schedule." + b.key()] = b.value().detach().clone();
  }
  return state;
}

void GaussianDiffusion::load_schedule_state(const std::map<std::string, torch::Tensor>& tensors,
                                            const std::string& origin) {
  if (!learned_) return;
  torch::NoGradGuard no_grad;
  const auto expected = schedule_state();
  for (const auto& [name, current] : expected) {
    const auto it = tensors.find(name);
    NUMERAL_CHECK(it != tensors.end(),
                  "{}: the run learned its noise schedule, but the file has no '{}' tensor", origin,
                  name);
    NUMERAL_CHECK(it->second.sizes() == current.sizes(),
                  "{}: '{}' has shape {} but this model's schedule has {}", origin, name,
                  it->second.sizes(), current.sizes());
  }
  for (auto& p : learned_->named_parameters()) p.value().copy_(tensors.at("schedule." + p.key()));
  for (auto& b : learned_->named_buffers()) b.value().copy_(tensors.at("schedule." + b.key()));
  refresh_schedule();
}

void GaussianDiffusion::refresh_schedule() {
  if (!learned_) return;
  torch::NoGradGuard no_grad;
  schedule_f64_ = NoiseSchedule::from_alphas_cumprod(learned_->alphas_cumprod());
  schedule_ = schedule_f64_.to(device_);
}

torch::Tensor GaussianDiffusion::network_input(const torch::Tensor& x_t,
                                               const torch::Tensor& t) const {
  if (config_.prediction != Prediction::edm) return x_t;
  const auto abar = extract(schedule_.alphas_cumprod, t);
  const double sd2 = config_.sigma_data * config_.sigma_data;
  return x_t * torch::rsqrt(1 - abar + abar * sd2);
}

torch::Tensor GaussianDiffusion::predict_eps(const ModelFn& network, const torch::Tensor& x_t,
                                             const torch::Tensor& t,
                                             const torch::Tensor& labels) const {
  return output_to_eps(x_t, t, network(network_input(x_t, t), t, labels));
}

torch::Tensor GaussianDiffusion::edm_target(const torch::Tensor& x0, const torch::Tensor& t,
                                            const torch::Tensor& noise) const {
  const auto abar = extract(schedule_.alphas_cumprod, t);
  const double sd = config_.sigma_data;
  const auto k = 1 - abar + abar * sd * sd;
  const auto x_t = q_sample(x0, t, noise);
  const auto c_skip = sd * sd * abar.sqrt() / k;
  const auto c_out = sd * (1 - abar).sqrt() / k.sqrt();
  return (x0 - c_skip * x_t) / c_out;
}

torch::Tensor GaussianDiffusion::x0_from_edm(const torch::Tensor& x_t, const torch::Tensor& t,
                                             const torch::Tensor& f) const {
  const auto abar = extract(schedule_.alphas_cumprod, t);
  const double sd = config_.sigma_data;
  const auto k = 1 - abar + abar * sd * sd;
  return sd * sd * abar.sqrt() / k * x_t + sd * (1 - abar).sqrt() / k.sqrt() * f;
}

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
  if (config_.prediction == Prediction::v) return eps_from_v(x_t, t, output);
  if (config_.prediction == Prediction::edm) {
    // eps = (x_t - sqrt(abar) x_0) / sqrt(1 - abar).
    return (x_t - extract(schedule_.sqrt_alphas_cumprod, t) * x0_from_edm(x_t, t, output)) /
           extract(schedule_.sqrt_one_minus_alphas_cumprod, t);
  }
  return output;
}

torch::Tensor GaussianDiffusion::training_target(const torch::Tensor& x0, const torch::Tensor& t,
                                                 const torch::Tensor& noise) const {
  if (config_.prediction == Prediction::v) return v_target(x0, t, noise);
  if (config_.prediction == Prediction::edm) return edm_target(x0, t, noise);
  return noise;
}

torch::Tensor GaussianDiffusion::loss_weights(const torch::Tensor& t) const {
  if (config_.min_snr_gamma <= 0) return torch::ones({t.size(0)}, schedule_.betas.options());
  const auto abar = schedule_.alphas_cumprod.index_select(0, t);
  const auto snr = abar / (1 - abar);
  const auto clipped = snr.clamp_max(config_.min_snr_gamma);
  // For eps targets the MSE in x_0 is snr * MSE in eps; for v it is (snr + 1) / ... (sec. 3.4).
  return config_.prediction == Prediction::v ? clipped / (snr + 1) : clipped / snr;
}

torch::Tensor GaussianDiffusion::training_loss(const ModelFn& model, const torch::Tensor& x0,
                                               const torch::Tensor& labels, const torch::Tensor& t,
                                               const torch::Tensor& noise) const {
  const auto x_t = q_sample(x0, t, noise);
  const auto output = model(network_input(x_t, t), t, labels);
  const auto per_sample = (output - training_target(x0, t, noise)).pow(2).flatten(1).mean(1);
  const auto loss =
      config_.min_snr_gamma <= 0 ? per_sample.mean() : (per_sample * loss_weights(t)).mean();
  if (!learned_ || !torch::GradMode::is_enabled()) return loss;
  // The schedule's objective rides on the gradient without changing the value (it is added and
  // subtracted detached): the logged loss stays the network's.
  const auto eps_mse = (output_to_eps(x_t, t, output) - noise).pow(2).flatten(1).mean(1);
  const auto variance = learned_->variance_objective(t, eps_mse).to(loss.device(), loss.dtype());
  return loss + (variance - variance.detach());
}

}  // namespace numeral
