#pragma once
// Samplers: free functions over a denoiser callback (x_t, t -> eps), so DDPM, DDIM and
// DPM-Solver++ share one signature and never see the network.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "numeral/common/fields.h"
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

enum class SamplerName { ddpm, ddim, dpmpp_2m };
NUMERAL_ENUM_NAMES(SamplerName, {SamplerName::ddpm, "ddpm"}, {SamplerName::ddim, "ddim"},
                   {SamplerName::dpmpp_2m, "dpm++2m"});
enum class Variance { posterior, beta };
NUMERAL_ENUM_NAMES(Variance, {Variance::posterior, "posterior"}, {Variance::beta, "beta"});
enum class Spacing { linspace, trailing };
NUMERAL_ENUM_NAMES(Spacing, {Spacing::linspace, "linspace"}, {Spacing::trailing, "trailing"});

// Sampler choice and settings; fields in describe() below.
struct SamplerOptions {
  SamplerName name = SamplerName::ddpm;
  int64_t steps = 0;  // model evaluations; 0 = the sampler's default (resolved_steps)
  double eta = 0.0;
  Variance variance = Variance::posterior;
  Spacing spacing = Spacing::linspace;
  bool clip_x0 = true;
  std::function<void(const SamplerStep&)> on_step;  // called once per step, before it is taken

  // Throws FieldError naming the field when it is invalid for a schedule of T steps.
  void validate(int64_t T) const;
  // The number of model evaluations these options mean for a schedule of T steps.
  int64_t resolved_steps(int64_t T) const;
};

// The sampler's fields, defined once (common/fields.h). `steps` left at 0 means the sampler's
// default; a value given (flag or request) must be at least 1.
template <class V>
void describe(SamplerOptions& s, V& v) {
  v("sampler", s.name,
    "ddpm (ancestral; Ho et al. 2020), ddim (Song et al. 2021) or dpm++2m "
    "(DPM-Solver++(2M); Lu et al. 2022); a distilled student runs only its own ddim steps");
  v("steps", s.steps,
    "model evaluations (default: T for ddpm, 25 for ddim and dpm++2m, a student's own)",
    Rule{[](double n) {
      return n >= 1 ? std::string()
                    : "expected at least 1 (leave it out for the sampler's default)";
    }});
  v("eta", s.eta, "DDIM stochasticity (0 = deterministic, 1 ~ DDPM)", at_least(0));
  v("variance", s.variance, "ddpm posterior variance: posterior (beta~_t) or beta (beta_t)");
  v("spacing", s.spacing,
    "timesteps: linspace (T-1 .. 0) or trailing (k T / steps - 1; Lin et al. 2023)");
  v("clip", s.clip_x0, "clamp the x_0 estimate to the data range [-1, 1]");
}

// The descending timesteps a sampler visits. "linspace": `steps` values evenly spaced from T-1 down
// to 0. "trailing" (Lin et al. 2023, Table 2): round(k T / steps) - 1 for k = steps .. 1, the last
// step going from round(T / steps) - 1 to the clean image. Trailing grids nest: the n-step grid is
// every other point of the 2n-step grid (k T / n = 2k T / 2n exactly), which progressive
// distillation relies on.
std::vector<int64_t> sampling_timesteps(int64_t T, int64_t steps,
                                        Spacing spacing = Spacing::linspace);

// Standard normal noise shaped like `like`, on its device: the samplers' only source of randomness.
using NoiseFn = std::function<torch::Tensor(const torch::Tensor& like)>;

// Noise drawn from `generator` (a CPU generator, so the same seed gives the same images on any
// device). The generator must outlive the function.
NoiseFn noise_from(at::Generator& generator);

// Noise for a batch made of parts: rows [offset_i, offset_i + sizes[i]) drawn from generators[i],
// so each part gets exactly the noise it would get sampled alone (batched requests, serve).
NoiseFn noise_in_parts(std::vector<at::Generator> generators, std::vector<int64_t> sizes);

// Runs the chosen sampler from x_T to x_0.
torch::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                     const torch::Tensor& x_T, const SamplerOptions& options,
                     const NoiseFn& noise);  // [B, C, H, W]
// The same with noise_from(generator).
torch::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                     const torch::Tensor& x_T, const SamplerOptions& options,
                     at::Generator& generator);

// Ancestral sampling (DDPM, Ho et al. 2020, Algorithm 2) on a subsequence of timesteps, with the
// betas respaced as in Nichol & Dhariwal 2021 (sec. 4); all T steps by default.
torch::Tensor ddpm_sample(const NoiseSchedule& schedule, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& options, const NoiseFn& noise);

// DDIM (Song et al. 2021, eq. 12) with stochasticity eta.
torch::Tensor ddim_sample(const NoiseSchedule& schedule, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& options, const NoiseFn& noise);

// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second-order data prediction, with a
// first-order first step and a final step to x_0.
torch::Tensor dpm_solver_pp_2m_sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                                      torch::Tensor x, const SamplerOptions& options);

// Gaussian noise of `shape` from a CPU generator, moved to `device`.
torch::Tensor randn_on(at::IntArrayRef shape, at::Generator& generator, torch::Device device);

// A CPU generator seeded with `seed`.
at::Generator make_generator(uint64_t seed);

}  // namespace numeral
