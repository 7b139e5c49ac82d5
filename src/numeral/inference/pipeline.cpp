#include "numeral/inference/pipeline.h"

#include <chrono>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/diffusion/guidance.h"

namespace numeral {
namespace {

// options.sampler with an on_step that reports `batch` to the observer.
GenerateOptions observed(GenerateOptions options, const GenerateObserver& observer, int64_t batch,
                         int64_t start, int64_t images) {
  if (observer.on_step) {
    options.sampler.on_step = [&observer, batch, start, images](const SamplerStep& s) {
      observer.on_step(StepEvent{batch, start, images, s});
    };
  }
  return options;
}

}  // namespace

Pipeline::Pipeline(const std::filesystem::path& checkpoint, torch::Device device,
                   ExecutionOptions execution)
    : Pipeline(load_trained_model(checkpoint, device), execution) {}

Pipeline::Pipeline(TrainedModel model, ExecutionOptions execution)
    : model_(std::move(model)), execution_(execution) {
  check_fields(execution_);
}

torch::Device Pipeline::device() const {
  return model_.model->parameters().front().device();
}

GenerateRequest Pipeline::default_request() const {
  GenerateRequest r;
  r.w = model_.default_w;
  r.w_guide = model_.default_w_guide;
  return r;
}

GenerateRequest Pipeline::resolve(GenerateRequest r) const {
  const int64_t k = num_classes();
  check_rule("per_class", r.per_class, at_least(1));
  check_rule("w", r.w, finite());
  NUMERAL_FIELD_CHECK(!(r.unconditional && !r.classes.empty()), "unconditional",
                      "unconditional: excludes classes (the null label has no class)");
  for (int64_t c : r.classes) {
    NUMERAL_FIELD_CHECK(c >= 0 && c < k, "classes",
                        "classes {}: out of range; this model has {} classes (0 to {})", c, k,
                        k - 1);
  }
  // Unconditional rows carry no class: the request stays without classes (one row per class of
  // the model), so that resolving it again gives the same request.
  if (r.classes.empty() && !r.unconditional) {
    for (int64_t c = 0; c < k; ++c) r.classes.push_back(c);
  }
  const int64_t rows = r.classes.empty() ? k : static_cast<int64_t>(r.classes.size());
  NUMERAL_FIELD_CHECK(r.per_class <= kMaxRequestImages / rows, "per_class",
                      "per_class {}: at most {} for {} row{} ({} images in one request, the most "
                      "an IDX file can count)",
                      r.per_class, with_commas(kMaxRequestImages / rows), rows,
                      rows == 1 ? "" : "s", with_commas(kMaxRequestImages));
  const GuidanceInterval interval = GuidanceInterval::of(r.w_interval);
  NUMERAL_FIELD_CHECK(interval.every_step() || interval.t_max < T(), "w_interval",
                      "w_interval {}: t_max is past this model's last timestep ({})",
                      field_value_text(r.w_interval), T() - 1);
  if (r.unconditional) r.w = 0;  // the null label has nothing to guide toward
  check_rule("w_guide", r.w_guide, finite());
  NUMERAL_FIELD_CHECK(r.w_guide == 0 || model_.guide, "w_guide",
                      "w_guide {}: autoguidance needs a guide model (--guide); none is loaded",
                      r.w_guide);
  if (r.w == 0 && r.w_guide == 0) r.w_interval.clear();  // nothing to apply in an interval
  GenerateOptions o;
  o.sampler = r.sampler;
  o.guidance = r.w;
  r.sampler = options_for(model_, o).sampler;
  r.sampler.on_step = nullptr;
  r.sampler.validate(T());
  return r;
}

GenerateOptions Pipeline::options(const GenerateRequest& r) const {
  GenerateOptions o = generate_options(r, execution_);
  o.guide = model_.guide;
  return o;
}

LabelSource Pipeline::labels(const GenerateRequest& r) const {
  std::vector<int64_t> rows = r.classes;
  if (r.unconditional)
    rows.assign(static_cast<size_t>(r.count(num_classes()) / r.per_class), kNullLabel);
  return class_major_labels(std::move(rows), r.per_class);
}

void Pipeline::run(const GenerateRequest& request,
                   const std::function<void(int64_t start, const torch::Tensor& images)>& consume,
                   const GenerateObserver& observer) const {
  const GenerateRequest r = resolve(request);
  run_batches(r.count(num_classes()), labels(r), r, consume, observer);
}

void Pipeline::run_batches(
    int64_t count, const LabelSource& labels_of, const GenerateRequest& resolved,
    const std::function<void(int64_t start, const torch::Tensor& images)>& consume,
    const GenerateObserver& observer) const {
  const GenerateOptions base = options(resolved);
  for (int64_t start = 0, b = 0; start < count; start += base.batch_size, ++b) {
    const int64_t end = std::min(count, start + base.batch_size);
    consume(start, generate_batch(model_.model, model_.diffusion, labels_of(start, end),
                                  observed(base, observer, b, start, count), b));
    if (observer.on_images) observer.on_images(end, count);
  }
}

GenerateResult Pipeline::generate(const GenerateRequest& request,
                                  const GenerateObserver& observer) const {
  const auto started = std::chrono::steady_clock::now();
  GenerateResult result;
  result.request = resolve(request);
  const int64_t count = result.request.count(num_classes());
  result.labels = labels(result.request)(0, count);
  result.images = generate_labels(result.labels, result.request, observer);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

torch::Tensor Pipeline::generate_labels(const torch::Tensor& labels, const GenerateRequest& request,
                                        const GenerateObserver& observer) const {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) > 0,
                "generate: expected a non-empty [N] label tensor");
  GenerateRequest r = request;
  r.classes.clear();
  std::vector<torch::Tensor> out;
  run_batches(
      labels.size(0), [&](int64_t start, int64_t end) { return labels.slice(0, start, end); },
      resolve(r), [&](int64_t, const torch::Tensor& images) { out.push_back(images); }, observer);
  return torch::cat(out);
}

bool Pipeline::can_share_batch(const GenerateRequest& a, const GenerateRequest& b) {
  const SamplerOptions &x = a.sampler, &y = b.sampler;
  return x.name == y.name && x.steps == y.steps && x.eta == y.eta && x.variance == y.variance &&
         x.spacing == y.spacing && x.clip_x0 == y.clip_x0 && a.w == b.w &&
         a.w_interval == b.w_interval && a.w_guide == b.w_guide;
}

std::vector<torch::Tensor> Pipeline::generate_together(const std::vector<GenerateRequest>& requests,
                                                       const GenerateObserver& observer) const {
  NUMERAL_CHECK(!requests.empty(), "generate_together: no requests");
  const auto& cfg = model_.config.model;
  const auto device = this->device();
  std::vector<at::Generator> generators;
  std::vector<int64_t> sizes;
  std::vector<torch::Tensor> labels, x_T;
  for (const GenerateRequest& r : requests) {
    NUMERAL_CHECK(can_share_batch(requests.front(), r),
                  "generate_together: the requests do not share sampler settings and w");
    const int64_t n = r.count(num_classes());
    NUMERAL_CHECK(n <= execution_.batch_size,
                  "generate_together: a request of {} images is more than one batch of {}", n,
                  execution_.batch_size);
    // Batch 0 of the request's own seed: the x_T and noise generate() would draw for it alone.
    generators.push_back(make_generator(batch_seed(r.seed, 0)));
    x_T.push_back(randn_on({n, cfg.image_channels, cfg.image_size, cfg.image_size},
                           generators.back(), device));
    labels.push_back(this->labels(r)(0, n));
    sizes.push_back(n);
  }
  torch::NoGradGuard no_grad;
  UNet unet = model_.model;  // a handle to the same module, usable non-const
  unet->eval();
  const auto y = torch::cat(labels);
  const int64_t total = y.size(0);
  const GenerateOptions o = observed(options(requests.front()), observer, 0, 0, total);
  const Denoiser denoiser = guided_denoiser(model_.model, model_.diffusion, y.to(device), o);
  const auto images = sample(model_.diffusion->schedule_f64(), denoiser, torch::cat(x_T), o.sampler,
                             noise_in_parts(std::move(generators), sizes))
                          .clamp(-1, 1)
                          .to(torch::kCPU);
  return images.split_with_sizes(sizes);
}

}  // namespace numeral
