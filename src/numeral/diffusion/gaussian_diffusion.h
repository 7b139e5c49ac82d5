#pragma once
// The forward process and its training objective (DDPM, Ho et al. 2020). Knows nothing of the
// network beyond a callback.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "numeral/diffusion/learned_schedule.h"
#include "numeral/diffusion/schedule.h"

namespace numeral {

// The network as the diffusion process sees it: (x_t, t, labels) -> raw output (eps or v).
using ModelFn = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t,
                                            const torch::Tensor& labels)>;

// The network call size auto-selected on a CPU. Small calls once won (calls of 16 against one of
// 500: 74 s against 103 s) only because glibc mapped and unmapped every large activation; with
// configure_allocator() keeping freed memory, 10,000 digits from the 4-step student took 55.3 s in
// calls of 256 against 75.3 s in calls of 16 and 70.3 s in calls of 64 (2-core AVX2 machine,
// idle; BENCHMARKS.md). 256 images of the default widths are 26 MB of activations per layer,
// under the 32 MiB that glibc still maps afresh.
constexpr int64_t kCpuForwardBatch = 256;

// `model` called on at most `max_batch` images at a time, the outputs concatenated: the same
// function up to float rounding, whose activations stay in a CPU's cache (see kCpuForwardBatch).
// max_batch <= 0 returns `model` itself.
ModelFn in_chunks(ModelFn model, int64_t max_batch);

// Forward diffusion, the conversions between eps, v, EDM's F and x_0, and the training loss. With
// schedule "learned" it also owns the schedule's parameters (learned_schedule.h), which the
// trainer optimises and checkpoints as "schedule.*".
class GaussianDiffusion {
 public:
  GaussianDiffusion(const DiffusionConfig& config, torch::Device device);

  const DiffusionConfig& config() const { return config_; }
  const NoiseSchedule& schedule() const { return schedule_; }          // float32 on the device
  const NoiseSchedule& schedule_f64() const { return schedule_f64_; }  // float64 on the CPU
  int64_t T() const { return config_.timesteps; }

  // The learned schedule's parameters (none for a fixed schedule).
  std::vector<torch::Tensor> parameters() const;
  // The learned schedule's tensors for a checkpoint, "schedule.*" (empty for a fixed schedule).
  std::map<std::string, torch::Tensor> schedule_state() const;
  // Loads them back (checked like any module state; `origin` names the file in errors) and
  // recomputes the coefficient tables. A no-op for a fixed schedule.
  void load_schedule_state(const std::map<std::string, torch::Tensor>& tensors,
                           const std::string& origin);
  // Recomputes the coefficient tables from the learned schedule, e.g. after an optimiser step.
  void refresh_schedule();

  // What the network is given for x_t: x_t itself, or for edm c_in x_t, scaled to unit variance
  // (EDM Table 1 in the variance-preserving form: c_in = 1 / sqrt(1 - abar + abar sigma_data^2)).
  torch::Tensor network_input(const torch::Tensor& x_t, const torch::Tensor& t) const;
  // The noise the network predicts at x_t: network_input, the call, output_to_eps.
  torch::Tensor predict_eps(const ModelFn& network, const torch::Tensor& x_t,
                            const torch::Tensor& t,
                            const torch::Tensor& labels) const;  // [B, C, H, W]

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
  // EDM (Karras et al. 2022, Table 1) in the variance-preserving form, with k = 1 - abar +
  // abar sigma_data^2: x_0 = c_skip x_t + c_out F, c_skip = sigma_data^2 sqrt(abar) / k,
  // c_out = sigma_data sqrt(1 - abar) / sqrt(k). The network's target F is then
  // (x_0 - c_skip x_t) / c_out, and its plain MSE is EDM's weighted loss. sigma_data = 1 gives
  // F = -v.
  torch::Tensor edm_target(const torch::Tensor& x0, const torch::Tensor& t,
                           const torch::Tensor& noise) const;
  torch::Tensor x0_from_edm(const torch::Tensor& x_t, const torch::Tensor& t,
                            const torch::Tensor& f) const;
  // The network's raw output converted to predicted noise, whatever the prediction target.
  torch::Tensor output_to_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                              const torch::Tensor& output) const;
  // What the network is trained to output at (x_0, t, noise): eps, v or EDM's F.
  torch::Tensor training_target(const torch::Tensor& x0, const torch::Tensor& t,
                                const torch::Tensor& noise) const;
  // Per-timestep loss weights: 1, or Min-SNR-gamma (Hang et al. 2023) when min_snr_gamma > 0.
  torch::Tensor loss_weights(const torch::Tensor& t) const;  // [B]
  // Mean over the batch of the weighted MSE between the network's output and its target (eps, v
  // or F) at timesteps t with the given noise. With a learned schedule the value is the same, and
  // its gradient also carries the schedule's variance objective (to the schedule only).
  torch::Tensor training_loss(const ModelFn& model, const torch::Tensor& x0,
                              const torch::Tensor& labels, const torch::Tensor& t,
                              const torch::Tensor& noise) const;  // scalar

 private:
  DiffusionConfig config_;
  torch::Device device_;
  LearnedSchedule learned_{nullptr};
  NoiseSchedule schedule_f64_;
  NoiseSchedule schedule_;
};

}  // namespace numeral
