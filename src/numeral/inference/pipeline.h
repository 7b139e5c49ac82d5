#pragma once
// The inference API: a model opened once, then any number of typed requests. Every generation path
// goes through it: the CLI (sample, sweep, trajectory, eval, eval popout), the server (serve/) and
// the tests. It does not depend on training.
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <vector>

#include "numeral/inference/generate.h"
#include "numeral/inference/request.h"
#include "numeral/inference/trained_model.h"

namespace numeral {

// One sampler step of one batch, as an observer sees it.
struct StepEvent {
  int64_t batch = 0;        // batch number within the request
  int64_t start = 0;        // index of the batch's first image in the request
  int64_t images = 0;       // images in the request
  const SamplerStep& step;  // index, steps, t, x_t and the x_0 estimate ([B, C, H, W])
};

// What a caller watches while a request runs; either callback may be empty. Both run on the
// generating thread; an exception thrown from one stops the request (a server's cancelled stream).
struct GenerateObserver {
  std::function<void(const StepEvent&)> on_step;
  std::function<void(int64_t done, int64_t total)> on_images;  // after each batch
};

// The images of a request.
struct GenerateResult {
  torch::Tensor images;     // [N, C, H, W] float in [-1, 1] on the CPU
  torch::Tensor labels;     // [N] int64 (kNullLabel when unconditional)
  GenerateRequest request;  // as resolved: classes filled in, a student's own sampler
  double seconds = 0;
};

class Pipeline {
 public:
  // Opens a checkpoint (a file or a run directory) onto `device`.
  Pipeline(const std::filesystem::path& checkpoint, torch::Device device,
           ExecutionOptions execution = {});
  // Wraps an already loaded model (shares its weights).
  explicit Pipeline(TrainedModel model, ExecutionOptions execution = {});

  const TrainedModel& model() const { return model_; }
  const ExecutionOptions& execution() const { return execution_; }
  torch::Device device() const;
  int64_t T() const { return model_.diffusion->T(); }
  int64_t num_classes() const { return model_.config.model.num_classes; }

  // What a request is before the caller sets anything: GenerateRequest's defaults with this
  // model's own guidance weight (TrainedModel::default_w). Callers start from it (the server's
  // JSON) or apply it to the fields a user left out (the CLI's flags, apply_model_defaults).
  GenerateRequest default_request() const;

  // The request checked against this model and completed: every class when none is listed, a
  // student's own sampler and steps, w = 0 when unconditional. Throws FieldError naming the
  // request field ("classes", "steps", ...) on the first problem.
  GenerateRequest resolve(GenerateRequest request) const;

  // The labels of a resolved request, class-major ([c0 x per_class, c1 x ...]), made per batch.
  LabelSource labels(const GenerateRequest& resolved) const;

  // The images of a request handed to `consume` one batch at a time (start = index of the batch's
  // first image) and then dropped: a request of millions of images never sits in memory.
  void run(const GenerateRequest& request,
           const std::function<void(int64_t start, const torch::Tensor& images)>& consume,
           const GenerateObserver& observer = {}) const;

  // The whole request at once.
  GenerateResult generate(const GenerateRequest& request,
                          const GenerateObserver& observer = {}) const;

  // Images for arbitrary `labels` ([N] int64; evaluation's balanced sets), with the request's
  // sampler, w and seed (its classes and per_class are not used).
  torch::Tensor generate_labels(const torch::Tensor& labels, const GenerateRequest& request,
                                const GenerateObserver& observer = {}) const;

  // Whether two resolved requests can share one forward pass: the same sampler settings, w,
  // w_interval and w_guide.
  static bool can_share_batch(const GenerateRequest& a, const GenerateRequest& b);

  // Several resolved requests that can share a batch (each at most execution().batch_size images),
  // sampled as one batch. Each request's images equal what generate() gives it alone, up to float
  // rounding: its x_T and sampler noise come from its own seed. on_step sees the whole batch
  // (requests in order); on_images is not called.
  std::vector<torch::Tensor> generate_together(const std::vector<GenerateRequest>& requests,
                                               const GenerateObserver& observer = {}) const;

  // The engine's options for a resolved request.
  GenerateOptions options(const GenerateRequest& resolved) const;

 private:
  // The images of `count` labels from `labels_of`, one batch of execution().batch_size at a time,
  // sampled as `resolved` asks; batch b's noise is seeded by (seed, b).
  void run_batches(int64_t count, const LabelSource& labels_of, const GenerateRequest& resolved,
                   const std::function<void(int64_t start, const torch::Tensor& images)>& consume,
                   const GenerateObserver& observer) const;

  TrainedModel model_;
  ExecutionOptions execution_;
};

}  // namespace numeral
