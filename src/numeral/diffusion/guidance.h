#pragma once
// Classifier-free guidance (Ho & Salimans 2022) as a strategy that turns a conditional noise
// predictor and a weight into a Denoiser.
#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/samplers.h"

namespace numeral {

// The timesteps at which guidance applies: t_min <= t <= t_max. Guidance in a limited interval
// (Kynkaanniemi et al. 2024, "Applying guidance in a limited interval improves sample and
// distribution quality in diffusion models"): at the noisiest steps guidance pulls every image of a
// class toward one shape (less diversity, worse FID), at the cleanest it changes little; a step
// outside the interval calls the conditional model alone (one pass instead of two).
struct GuidanceInterval {
  int64_t t_min = 0;
  int64_t t_max = std::numeric_limits<int64_t>::max();

  // From a request's w_interval: empty = every step, else {t_min, t_max}.
  static GuidanceInterval of(const std::vector<int64_t>& bounds);
  // The request field again: empty for every step.
  std::vector<int64_t> bounds() const;
  bool every_step() const { return t_min <= 0 && t_max == std::numeric_limits<int64_t>::max(); }
  bool contains(int64_t t) const { return t_min <= t && t <= t_max; }
};

// A Denoiser that calls `inside` at timesteps within `interval` and `outside` elsewhere. Samplers
// call a Denoiser with one t for the whole batch; a batch of mixed timesteps calls both and picks
// per image.
Denoiser within_interval(Denoiser inside, Denoiser outside, GuidanceInterval interval);

// Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): a
// weaker model of the same data (less trained or smaller), conditional on the same labels, whose
// errors the sample is pushed away from. Where classifier-free guidance pushes away from every
// class at once (and so toward a few typical shapes of each), autoguidance keeps the variety.
struct Autoguide {
  ModelFn guide_model;  // predicted noise of the weaker model; empty: no autoguidance
  double w = 0;         // its weight
};

// A Denoiser for `labels`: eps = eps(x, t, y) + w (eps(x, t, y) - eps(x, t, null))
//                                 + autoguide.w (eps(x, t, y) - eps_guide(x, t, y)),
// the conditional and null halves computed in one batched forward pass, the guide in a second, at
// the timesteps of `interval` (elsewhere eps(x, t, y) alone). w = 0 without an autoguide is plain
// conditional sampling (one pass); labels all kNullLabel (= -1) give unconditional sampling (w has
// nothing to act on). eps_model returns predicted noise for (x_t, t, labels).
Denoiser classifier_free_guidance(ModelFn eps_model, torch::Tensor labels, double w,
                                  GuidanceInterval interval = {}, Autoguide autoguide = {});

// The guidance formula alone: (1 + w) eps_cond - w eps_uncond.
torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, double w);
// The same with a weight per image (w [B, 1, 1, 1]), as distillation needs.
torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond,
                         const torch::Tensor& w);

}  // namespace numeral
