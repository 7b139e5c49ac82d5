#pragma once
// Generating images from a trained model: the sampler, guidance and seeding put together.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/model/unet.h"

namespace numeral {

// How to generate: the sampler, the guidance weight and the seed.
struct GenerateOptions {
  SamplerOptions sampler;
  double guidance = 0.0;     // w: eps = (1 + w) eps(y) - w eps(null); 0 = plain conditional
  uint64_t seed = 0;         // same seed, checkpoint and options: the same images
  int64_t batch_size = 256;  // images per forward pass (guidance doubles it)
};

// Generates one image per label (kNullLabel = unconditional) with the model's noise
// prediction. Batch b draws its noise from a generator seeded by (seed, b), so results do not
// depend on the device. `on_batch` reports images done; `on_step` sees every sampler step of
// every batch. Returns [N, C, H, W] float in [-1, 1] on the CPU.
torch::Tensor generate(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const torch::Tensor& labels, const GenerateOptions& options,
                       const std::function<void(int64_t done)>& on_batch = {});

// Labels for `per_class` images of each listed class, class-major: [c0 x per_class, c1 x ...].
torch::Tensor repeat_labels(const std::vector<int64_t>& classes, int64_t per_class);  // [N] int64

}  // namespace numeral
