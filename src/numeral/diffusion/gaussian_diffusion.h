#pragma once
// The forward process and its training objective (DDPM, Ho et al. 2020). Knows nothing of the
// network beyond a callback.
#include <torch/torch.h>

#include <functional>

#include "numeral/diffusion/schedule.h"

namespace numeral {

// The network as the diffusion process sees it: (x_t, t, labels) -> raw output (eps or v).
using ModelFn = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t,
                                            const torch::Tensor& labels)>;

// `model` called on at most `max_batch` images at a time, the outputs concatenated: the same
// function up to float rounding, whose activations stay in a CPU's cache (see kCpuForwardBatch).
// max_batch <= 0 returns `model` itself.
ModelFn in_chunks(ModelFn model, int64_t max_batch);

// Forward diffusion, the conversions between eps, v and x_0, and the training loss.
class GaussianDiffusion {
 public:
  GaussianDiffusion(const DiffusionConfig& config, torch::Device device);

  const DiffusionConfig& config() const { return config_; }
  const NoiseSchedule& schedule() const { return schedule_; }          // float32 on the device
  const NoiseSchedule& schedule_f64() const { return schedule_f64_; }  // float64 on the CPU
  int64_t T() const { return config_.timesteps; }

  // DDPM eq. 4: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
  torch::Tensor q_sample(const torch::Tensor& x0, const torch::Tensor& t,
                         const torch::Tensor& noise) const;  // [B, C, H, W]
  // x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).
  torch::Tensor predict_x0_from_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                                    const torch::Tensor& eps) const;
  // v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022).
  torch::Tensor v_target(const torch::Tensor& x0, const torch::Tensor& t,
                         const torch::Tensor& noise) const;
  // eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t.
  torch::Tensor eps_from_v(const torch::Tensor& x_t, const torch::Tensor& t,
                           const torch::Tensor& v) const;
  // The network's raw output converted to predicted noise, whatever the prediction target.
  torch::Tensor output_to_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                              const torch::Tensor& output) const;
  // Per-timestep loss weights: 1, or Min-SNR-gamma (Hang et al. 2023) when min_snr_gamma > 0.
  torch::Tensor loss_weights(const torch::Tensor& t) const;  // [B]
  // Mean over the batch of the weighted MSE between the network's output and its target (eps or
  // v) at timesteps t with the given noise.
  torch::Tensor training_loss(const ModelFn& model, const torch::Tensor& x0,
                              const torch::Tensor& labels, const torch::Tensor& t,
                              const torch::Tensor& noise) const;  // scalar

 private:
  DiffusionConfig config_;
  NoiseSchedule schedule_f64_;
  NoiseSchedule schedule_;
};

}  // namespace numeral
