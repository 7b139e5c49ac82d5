#pragma once
// A noise schedule learned during training, after Variational Diffusion Models (Kingma et al.
// 2021, sec. 3.4 and 5.2). The schedule is gamma_t = -log SNR(t) at the T discrete timesteps:
// monotone by construction (cumulative softplus increments) with both endpoints fixed to those of
// the cosine schedule it starts from, so only its shape is learned. The shape minimises the
// variance of the discrete-time VLB estimate (VDM eq. 13), sum_t (SNR(t-1) - SNR(t)) / 2 *
// ||eps - eps_hat||^2, sampled at uniform t: the gradient of the estimate's second moment moves
// each step's weight SNR(t-1) - SNR(t) toward where the network's error is small.
#include <torch/torch.h>

namespace numeral {

class LearnedScheduleImpl : public torch::nn::Module {
 public:
  // Starts at `alphas_cumprod` ([T] float64, decreasing in (0, 1)): gamma_0 and gamma_{T-1} stay
  // fixed at its endpoints, and the increments between them start as its own.
  explicit LearnedScheduleImpl(const torch::Tensor& alphas_cumprod);

  // gamma_t = gamma_0 + (gamma_{T-1} - gamma_0) * sum_{k<t} softplus(theta_k) / sum softplus:
  // strictly increasing, endpoints exact.
  torch::Tensor gamma() const;  // [T], differentiable in theta
  // abar_t = sigmoid(-gamma_t).
  torch::Tensor alphas_cumprod() const;  // [T], differentiable in theta
  // The variance objective for a batch: mean over samples with t >= 1 of
  // ((SNR(t-1) - SNR(t)) * mse)^2, where mse is each sample's detached mean squared error of the
  // noise prediction. Its gradient reaches theta only.
  torch::Tensor variance_objective(const torch::Tensor& t,           // [B] int64
                                   const torch::Tensor& mse) const;  // [B]
  int64_t T() const { return theta_.size(0) + 1; }

 private:
  torch::Tensor theta_;                     // [T - 1] raw increments
  torch::Tensor gamma_first_, gamma_last_;  // fixed endpoints (buffers), float64 scalars
};
TORCH_MODULE(LearnedSchedule);

}  // namespace numeral
