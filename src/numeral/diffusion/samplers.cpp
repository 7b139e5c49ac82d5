#include "numeral/diffusion/samplers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/common/signals.h"

namespace numeral {
namespace {

// abar at a sampling timestep; abar_{-1} = 1 (the clean image).
double abar_at(const NoiseSchedule& s, int64_t t) {
  return t < 0 ? 1.0 : s.alphas_cumprod[t].item<double>();
}

torch::Tensor full_t(int64_t t, const torch::Tensor& like) {
  return torch::full({like.size(0)}, t,
                     torch::TensorOptions().dtype(torch::kLong).device(like.device()));
}

torch::Tensor x0_from_eps(const torch::Tensor& x, const torch::Tensor& eps, double abar,
                          bool clip) {
  auto x0 = (x - std::sqrt(1 - abar) * eps) / std::sqrt(abar);
  return clip ? x0.clamp(-1, 1) : x0;
}

// Every sampler calls this once per step: the observer, and the poll point for SIGINT and SIGTERM.
void report(const SamplerOptions& o, int64_t index, int64_t steps, int64_t t,
            const torch::Tensor& x, const torch::Tensor& x0) {
  throw_if_interrupted("sampling");
  if (o.on_step) o.on_step(SamplerStep{index, steps, t, x, x0});
}

}  // namespace

void SamplerOptions::validate(int64_t T) const {
  NUMERAL_FIELD_CHECK(steps >= 0, "steps", "steps {}: expected at least 1", steps);
  NUMERAL_FIELD_CHECK(resolved_steps(T) <= T, "steps", "steps {}: at most T = {} for this model",
                      steps, T);
  check_rule("eta", eta, at_least(0));
}

int64_t SamplerOptions::resolved_steps(int64_t T) const {
  if (steps > 0) return steps;
  return name == SamplerName::ddpm ? T : std::min<int64_t>(25, T);
}

std::vector<int64_t> sampling_timesteps(int64_t T, int64_t steps, Spacing spacing) {
  NUMERAL_CHECK(steps >= 1 && steps <= T, "sampling_timesteps: steps must be in [1, {}], got {}", T,
                steps);
  std::vector<int64_t> ts(steps);
  if (spacing == Spacing::trailing) {
    for (int64_t i = 0; i < steps; ++i) {
      ts[i] = std::llround(static_cast<double>((steps - i) * T) / static_cast<double>(steps)) - 1;
    }
    return ts;
  }
  if (steps == 1) return {T - 1};
  for (int64_t i = 0; i < steps; ++i) {
    ts[i] = static_cast<int64_t>(
        std::llround(static_cast<double>(T - 1) * static_cast<double>(steps - 1 - i) /
                     static_cast<double>(steps - 1)));
  }
  return ts;
}

at::Generator make_generator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

torch::Tensor randn_on(at::IntArrayRef shape, at::Generator& generator, torch::Device device) {
  return torch::randn(shape, generator, torch::TensorOptions().dtype(torch::kFloat)).to(device);
}

NoiseFn noise_from(at::Generator& generator) {
  return [&generator](const torch::Tensor& like) {
    return randn_on(like.sizes(), generator, like.device());
  };
}

NoiseFn noise_in_parts(std::vector<at::Generator> generators, std::vector<int64_t> sizes) {
  NUMERAL_CHECK(generators.size() == sizes.size() && !sizes.empty(),
                "noise_in_parts: expected one size per generator");
  return [generators = std::move(generators),
          sizes = std::move(sizes)](const torch::Tensor& like) mutable {
    std::vector<torch::Tensor> parts;
    auto shape = like.sizes().vec();
    for (size_t i = 0; i < sizes.size(); ++i) {
      shape[0] = sizes[i];
      parts.push_back(randn_on(shape, generators[i], like.device()));
    }
    return torch::cat(parts);
  };
}

torch::Tensor ddpm_sample(const NoiseSchedule& s, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& o, const NoiseFn& noise) {
  const auto ts = sampling_timesteps(s.T, o.resolved_steps(s.T), o.spacing);
  const auto n = static_cast<int64_t>(ts.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = ts[i], t_prev = i + 1 < n ? ts[i + 1] : -1;
    const double abar = abar_at(s, t), abar_prev = abar_at(s, t_prev);
    const double beta = 1 - abar / abar_prev;  // respaced beta; equals beta_t when all T steps
    const auto eps = denoiser(x, full_t(t, x));
    const auto x0 = x0_from_eps(x, eps, abar, o.clip_x0);
    report(o, i, n, t, x, x0);
    // DDPM eq. 7: the posterior mean mu~(x_t, x_0).
    const double coef1 = beta * std::sqrt(abar_prev) / (1 - abar);
    const double coef2 = (1 - abar_prev) * std::sqrt(1 - beta) / (1 - abar);
    x = coef1 * x0 + coef2 * x;
    if (t_prev >= 0) {
      const double var = o.variance == Variance::beta ? beta : beta * (1 - abar_prev) / (1 - abar);
      x = x + std::sqrt(var) * noise(x);
    }
  }
  return x;
}

torch::Tensor ddim_sample(const NoiseSchedule& s, const Denoiser& denoiser, torch::Tensor x,
                          const SamplerOptions& o, const NoiseFn& noise) {
  const auto ts = sampling_timesteps(s.T, o.resolved_steps(s.T), o.spacing);
  const auto n = static_cast<int64_t>(ts.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = ts[i], t_prev = i + 1 < n ? ts[i + 1] : -1;
    const double abar = abar_at(s, t), abar_prev = abar_at(s, t_prev);
    auto eps = denoiser(x, full_t(t, x));
    const auto x0 = x0_from_eps(x, eps, abar, o.clip_x0);
    report(o, i, n, t, x, x0);
    if (o.clip_x0) eps = (x - std::sqrt(abar) * x0) / std::sqrt(1 - abar);  // consistent eps
    // DDIM eq. 12 and 16.
    const double sigma = o.eta * std::sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev));
    x = std::sqrt(abar_prev) * x0 + std::sqrt(std::max(0.0, 1 - abar_prev - sigma * sigma)) * eps;
    if (sigma > 0) x = x + sigma * noise(x);
  }
  return x;
}

torch::Tensor dpm_solver_pp_2m_sample(const NoiseSchedule& s, const Denoiser& denoiser,
                                      torch::Tensor x, const SamplerOptions& o) {
  const auto ts = sampling_timesteps(s.T, o.resolved_steps(s.T), o.spacing);
  const auto n = static_cast<int64_t>(ts.size());
  // alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t).
  auto alpha = [&](int64_t t) { return std::sqrt(abar_at(s, t)); };
  auto sigma = [&](int64_t t) { return std::sqrt(1 - abar_at(s, t)); };
  auto lambda = [&](int64_t t) { return std::log(alpha(t) / sigma(t)); };
  torch::Tensor x0_prev;
  double h_prev = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = ts[i];
    const auto eps = denoiser(x, full_t(t, x));
    const auto x0 = x0_from_eps(x, eps, abar_at(s, t), o.clip_x0);
    report(o, i, n, t, x, x0);
    if (i + 1 == n) {  // final step to sigma = 0: the data prediction itself
      x = x0;
      break;
    }
    const int64_t t_next = ts[i + 1];
    const double h = lambda(t_next) - lambda(t);
    torch::Tensor d = x0;
    if (x0_prev.defined()) {  // second-order multistep correction
      const double r = h_prev / h;
      d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev;
    }
    x = (sigma(t_next) / sigma(t)) * x - alpha(t_next) * std::expm1(-h) * d;
    x0_prev = x0;
    h_prev = h;
  }
  return x;
}

torch::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                     const torch::Tensor& x_T, const SamplerOptions& options,
                     const NoiseFn& noise) {
  options.validate(schedule.T);
  torch::NoGradGuard no_grad;
  switch (options.name) {
    case SamplerName::ddim:
      return ddim_sample(schedule, denoiser, x_T, options, noise);
    case SamplerName::dpmpp_2m:
      return dpm_solver_pp_2m_sample(schedule, denoiser, x_T, options);
    case SamplerName::ddpm:
      break;
  }
  return ddpm_sample(schedule, denoiser, x_T, options, noise);
}

torch::Tensor sample(const NoiseSchedule& schedule, const Denoiser& denoiser,
                     const torch::Tensor& x_T, const SamplerOptions& options,
                     at::Generator& generator) {
  return sample(schedule, denoiser, x_T, options, noise_from(generator));
}

}  // namespace numeral
