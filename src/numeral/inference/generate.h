#pragma once
// The generation engine under the Pipeline (inference/pipeline.h): the sampler, guidance and
// seeding put together, one batch at a time.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/inference/request.h"
#include "numeral/inference/trained_model.h"
#include "numeral/model/unet.h"

namespace numeral {

// How to generate: the sampler, the guidance weight and the seed.
struct GenerateOptions {
  SamplerOptions sampler;
  double guidance = kDefaultGuidance;  // w: eps = (1 + w) eps(y) - w eps(null); 0 = conditional
  GuidanceInterval guidance_interval;  // the timesteps guided; default every step
  // Autoguidance: the weaker model (TrainedModel::guide, set by the Pipeline) and its weight.
  std::shared_ptr<const TrainedModel> guide;
  double w_guide = 0;
  uint64_t seed = 0;          // same seed, checkpoint and options: the same images
  int64_t batch_size = 256;   // images sampled together; batch b's noise is seeded by (seed, b)
  int64_t forward_batch = 0;  // images per network call (guidance doubles a batch); 0 = auto
  Precision precision = Precision::float32;  // of the network's calls (request.h)

  // forward_batch as used on `device`: the option, or when 0, kCpuForwardBatch on a CPU (whose
  // cache a larger call overflows) and the whole batch on an accelerator (0). Throws when < 0.
  int64_t resolved_forward_batch(const torch::Device& device) const;
};

// The engine's options for a request executed with `execution`.
GenerateOptions generate_options(const GenerateRequest& request, const ExecutionOptions& execution);

// The request part of engine options: sampler, w and seed (classes and per_class left empty).
GenerateRequest request_of(const GenerateOptions& options);

// The execution part of engine options: batch_size, forward_batch and precision.
ExecutionOptions execution_of(const GenerateOptions& options);

// The model as generate() calls it: predicted noise, options.resolved_forward_batch images per
// call, in options.precision. The images do not depend on the call size beyond float rounding.
ModelFn sampling_model(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const GenerateOptions& options);

// What a request for `requested` means for `model`: the options themselves for a trained model; for
// a distilled student, DDIM (eta 0) on its trailing grid of model.student_steps steps, the only way
// it was trained to sample. A student refuses another sampler or step count, naming what was asked.
GenerateOptions options_for(const TrainedModel& model, GenerateOptions requested);

// The Denoiser that generate() samples with for `labels` (on the model's device): classifier-free
// guidance with options.guidance around a trained model (two halves in one call) plus autoguidance
// against options.guide with options.w_guide (a second call), or a student
// called once with w as its input; at timesteps outside options.guidance_interval, the model
// unguided (w = 0).
Denoiser guided_denoiser(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                         const torch::Tensor& labels, const GenerateOptions& options);

// Generates one image per label (kNullLabel = unconditional) with the model's noise
// prediction. Batch b draws its noise from a generator seeded by (seed, b), so results do not
// depend on the device. `on_batch` reports images done; `on_step` sees every sampler step of
// every batch. Returns [N, C, H, W] float in [-1, 1] on the CPU.
torch::Tensor generate(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const torch::Tensor& labels, const GenerateOptions& options,
                       const std::function<void(int64_t done)>& on_batch = {});

// The seed of batch `batch` in a generate() call seeded with `seed`: the same formula, so pictures
// built one batch at a time match `numeral sample` with the same seed.
uint64_t batch_seed(uint64_t seed, int64_t batch);

// Generates batch number `batch` of a generate() call whose labels for that batch are `labels`
// ([B] int64, kNullLabel = unconditional): the same x_T, sampler noise and guidance, so the result
// equals the matching slice of generate(). options.sampler.on_step sees every step.
torch::Tensor generate_batch(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                             const torch::Tensor& labels, const GenerateOptions& options,
                             int64_t batch);  // [B, C, H, W] float in [-1, 1] on the CPU

// The labels of images start..end-1 of a request ([end - start] int64, kNullLabel =
// unconditional), made when a batch needs them.
using LabelSource = std::function<torch::Tensor(int64_t start, int64_t end)>;

// `per_class` labels for each entry of `classes` (kNullLabel for an unconditional row),
// class-major, as a LabelSource: a request of a billion images never holds a billion labels.
LabelSource class_major_labels(std::vector<int64_t> classes, int64_t per_class);

// The images of a request for `count` images labelled by `labels`, handed to `consume` one batch of
// options.batch_size at a time (start = index of the batch's first image) and then dropped. The
// same images as generate() with the same labels.
void generate_batches(
    UNet model, std::shared_ptr<GaussianDiffusion> diffusion, int64_t count,
    const LabelSource& labels, const GenerateOptions& options,
    const std::function<void(int64_t start, const torch::Tensor& images)>& consume);

// Labels for `per_class` images of each listed class, class-major: [c0 x per_class, c1 x ...].
torch::Tensor repeat_labels(const std::vector<int64_t>& classes, int64_t per_class);  // [N] int64

}  // namespace numeral
