#pragma once
// Samplers: free functions over a denoiser callback (x_t, t -> eps), so DDPM, DDIM and
// DPM-Solver++ share one signature and never see the network.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "numeral/diffusion/schedule.h"

namespace numeral {

// Predicted noise for a batch at integer timesteps t in [0, T).
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t)>;

// One step of a sampler, for trajectory pictures: x_t before the step and the model's current
// estimate of x_0.
struct SamplerStep {
  int64_t index = 0;  // 0 .. steps-1
  int64_t steps = 0;
  int64_t t = 0;      // the timestep the model was evaluated at
  torch::Tensor x_t;  // [B, C, H, W]
  torch::Tensor x0;   // [B, C, H, W]
};

// Sampler choice and settings; `numeral sample` binds its flags to these fields.
struct SamplerOptions {
  std::string name = "ddpm";           // ddpm | ddim | dpm++2m
  int64_t steps = 0;                   // model evaluations; 0 = T for ddpm, 25 for the others
  double eta = 0.0;                    // DDIM stochasticity (0 = deterministic, 1 ~ DDPM)
  std::string variance = "posterior";  // ddpm: posterior (beta~_t) or beta (beta_t)
  std::string spacing = "linspace";    // timesteps: linspace (T-1 .. 0) or trailing (see below)
  bool clip_x0 = true;                 // clamp the x_0 estimate to the data range [-1, 1]
  std::function<void(const SamplerStep&)> on_step;  // called once per step, before it is taken

  // Throws numeral::Error naming the option when it is invalid for a schedule of T steps.
  void validate(int64_t T) const;
  // The number of model evaluations these options mean for a schedule of T steps.
  int64_t resolved_steps(int64_t T) const;
};

// The descending timesteps a sampler visits. "linspace": `steps` values evenly spaced from T-1 down
// to 0. "trailing" (Lin et al. 2023, Table 2): round(k T / steps) - 1 for k = steps .. 1, the last
// step going from round(T / steps) - 1 to the clean image. Trailing grids nest: the n-step grid is
// every other point of the 2n-step grid (k T / n = 2k T / 2n exactly), which progressive
// distillation relies on.
std::vector<int64_t> sampling_timesteps(int64_t T, int64_t steps,
                                        const std::string& spacing = "linspace");

// Runs the chosen sampler from x_T to x_0. Noise comes from `generator` (a CPU generator), so the
// same seed gives the same images on any device.
torch::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                     const torch::Tensor& x_T, const SamplerOptions& options,
                     at::Generator& generator);  // [B, C, H, W]

// Ancestral sampling (DDPM, Ho et al. 2020, Algorithm 2) on a subsequence of timesteps, with the
// betas respaced as in Nichol & Dhariwal 2021 (sec. 4); all T steps by default.
torch::Tensor ddpm_sample(const NoiseSchedule& schedule, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& options, at::Generator& generator);

// DDIM (Song et al. 2021, eq. 12) with stochasticity eta.
torch::Tensor ddim_sample(const NoiseSchedule& schedule, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& options, at::Generator& generator);

// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second-order data prediction, with a
// first-order first step and a final step to x_0.
torch::Tensor dpm_solver_pp_2m_sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                                      torch::Tensor x, const SamplerOptions& options);

// Gaussian noise of `shape` from a CPU generator, moved to `device`.
torch::Tensor randn_on(at::IntArrayRef shape, at::Generator& generator, torch::Device device);

// A CPU generator seeded with `seed`.
at::Generator make_generator(uint64_t seed);

}  // namespace numeral
