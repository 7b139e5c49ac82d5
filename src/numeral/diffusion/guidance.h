#pragma once
// Classifier-free guidance (Ho & Salimans 2022) as a strategy that turns a conditional noise
// predictor and a weight into a Denoiser.
#include <torch/torch.h>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/samplers.h"

namespace numeral {

// A Denoiser for `labels` with guidance weight w: eps = (1 + w) eps(x, t, y) - w eps(x, t, null),
// both halves computed in one batched forward pass. w = 0 is plain conditional sampling (one
// pass); labels all kNullLabel (= -1) give unconditional sampling.
// eps_model returns predicted noise for (x_t, t, labels).
Denoiser classifier_free_guidance(ModelFn eps_model, torch::Tensor labels, double w);

// The guidance formula alone: (1 + w) eps_cond - w eps_uncond.
torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond, double w);
// The same with a weight per image (w [B, 1, 1, 1]), as distillation needs.
torch::Tensor guided_eps(const torch::Tensor& eps_cond, const torch::Tensor& eps_uncond,
                         const torch::Tensor& w);

}  // namespace numeral
