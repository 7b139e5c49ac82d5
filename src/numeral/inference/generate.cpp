#include "numeral/inference/generate.h"

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/inference/trained_model.h"
#include "numeral/model/layers.h"

namespace numeral {

uint64_t batch_seed(uint64_t seed, int64_t batch) {
  return seed * 1000003ULL + static_cast<uint64_t>(batch);
}

int64_t GenerateOptions::resolved_forward_batch(const torch::Device& device) const {
  NUMERAL_CHECK(forward_batch >= 0, "--forward-batch {}: expected 0 (auto) or more", forward_batch);
  if (forward_batch > 0) return forward_batch;
  return device.is_cpu() ? kCpuForwardBatch : 0;
}

GenerateOptions generate_options(const GenerateRequest& request,
                                 const ExecutionOptions& execution) {
  GenerateOptions o;
  o.sampler = request.sampler;
  o.guidance = request.w;
  o.guidance_interval = GuidanceInterval::of(request.w_interval);
  o.w_guide = request.w_guide;
  o.seed = request.seed;
  o.batch_size = execution.batch_size;
  o.forward_batch = execution.forward_batch;
  o.precision = execution.precision;
  return o;
}

GenerateRequest request_of(const GenerateOptions& options) {
  GenerateRequest r;
  r.sampler = options.sampler;
  r.sampler.on_step = nullptr;
  r.w = options.guidance;
  r.w_interval = options.guidance_interval.bounds();
  r.w_guide = options.w_guide;
  r.seed = options.seed;
  return r;
}

ExecutionOptions execution_of(const GenerateOptions& options) {
  return {options.batch_size, options.forward_batch, options.precision};
}

ModelFn sampling_model(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const GenerateOptions& options) {
  const auto device = model->parameters().front().device();
  const bool bf16 = options.precision == Precision::bfloat16;
  NUMERAL_FIELD_CHECK(!bf16 || bfloat16_convolutions_run(device), "precision",
                      "precision bfloat16: LibTorch cannot run bfloat16 convolutions on this {} "
                      "(its CPU instructions or oneDNN build); use float32",
                      device.str());
  return in_chunks(eps_model(model, std::move(diffusion), options.guidance, options.precision),
                   options.resolved_forward_batch(device));
}

GenerateOptions options_for(const TrainedModel& model, GenerateOptions requested) {
  if (model.student_steps == 0) return requested;
  const int64_t n = model.student_steps;
  SamplerOptions& s = requested.sampler;
  const bool default_sampler = s.name == SamplerOptions{}.name && s.steps == 0;
  const bool own = s.name == SamplerName::ddim && (s.steps == 0 || s.steps == n);
  NUMERAL_FIELD_CHECK(default_sampler || own, s.name != SamplerName::ddim ? "sampler" : "steps",
                      "{} {}: a distilled student samples only with ddim at its {} steps (asked "
                      "for {} with {} steps); leave sampler and steps out",
                      s.name != SamplerName::ddim ? "sampler" : "steps",
                      s.name != SamplerName::ddim ? to_string(s.name) : std::to_string(s.steps), n,
                      s.name, s.resolved_steps(model.diffusion->T()));
  NUMERAL_FIELD_CHECK(s.eta == 0, "eta",
                      "eta {}: a distilled student samples deterministically (eta 0)", s.eta);
  s.name = SamplerName::ddim;
  s.steps = n;
  s.eta = 0;
  s.spacing = Spacing::trailing;
  return requested;
}

Denoiser guided_denoiser(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                         const torch::Tensor& labels, const GenerateOptions& options) {
  if (!model->config().guidance_input) {
    Autoguide autoguide;
    if (options.w_guide != 0) {
      NUMERAL_CHECK(options.guide != nullptr, "generate: w_guide {} without a guide model",
                    options.w_guide);
      autoguide = {sampling_model(options.guide->model, options.guide->diffusion, options),
                   options.w_guide};
    }
    return classifier_free_guidance(sampling_model(model, diffusion, options), labels,
                                    options.guidance, options.guidance_interval, autoguide);
  }
  NUMERAL_CHECK(options.w_guide == 0, "generate: a distilled student cannot be autoguided");
  check_rule("w", options.guidance, finite());
  NUMERAL_CHECK(options.sampler.spacing == Spacing::trailing,
                "generate: a distilled student samples on its trailing grid (see options_for)");
  const auto with_w = [&](double w) -> Denoiser {  // the student given w on every call
    GenerateOptions o = options;
    o.guidance = w;
    const ModelFn student = sampling_model(model, diffusion, o);
    return [student, labels](const torch::Tensor& x, const torch::Tensor& t) {
      return student(x, t, labels);
    };
  };
  if (options.guidance_interval.every_step() || options.guidance == 0) {
    return with_w(options.guidance);
  }
  return within_interval(with_w(options.guidance), with_w(0), options.guidance_interval);
}

torch::Tensor generate_batch(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                             const torch::Tensor& labels, const GenerateOptions& options,
                             int64_t batch) {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) > 0,
                "generate_batch: expected a non-empty [B] label tensor");
  const auto& cfg = model->config();
  const int64_t top = labels.max().item<int64_t>();
  NUMERAL_CHECK(top < cfg.num_classes, "generate: label {} out of range for a model of {} classes",
                top, cfg.num_classes);
  options.sampler.validate(diffusion->T());
  torch::NoGradGuard no_grad;
  model->eval();
  const auto device = model->parameters().front().device();
  auto gen = make_generator(batch_seed(options.seed, batch));
  const auto y = labels.to(device);
  const auto x_T =
      randn_on({labels.size(0), cfg.image_channels, cfg.image_size, cfg.image_size}, gen, device);
  const Denoiser denoiser = guided_denoiser(model, diffusion, y, options);
  return sample(diffusion->schedule_f64(), denoiser, x_T, options.sampler, gen)
      .clamp(-1, 1)
      .to(torch::kCPU);
}

LabelSource class_major_labels(std::vector<int64_t> classes, int64_t per_class) {
  NUMERAL_CHECK(per_class >= 1, "class_major_labels: expected at least one image per class, got {}",
                per_class);
  return [classes = std::move(classes), per_class](int64_t start, int64_t end) {
    auto labels = torch::empty({end - start}, torch::kLong);
    auto* out = labels.data_ptr<int64_t>();
    for (int64_t i = start; i < end; ++i) out[i - start] = classes.at(i / per_class);
    return labels;
  };
}

void generate_batches(
    UNet model, std::shared_ptr<GaussianDiffusion> diffusion, int64_t count,
    const LabelSource& labels, const GenerateOptions& options,
    const std::function<void(int64_t start, const torch::Tensor& images)>& consume) {
  NUMERAL_CHECK(count > 0, "generate: expected at least one image, got {}", count);
  NUMERAL_CHECK(options.batch_size >= 1, "--batch-size {}: expected at least 1",
                options.batch_size);
  for (int64_t start = 0, b = 0; start < count; start += options.batch_size, ++b) {
    const int64_t end = std::min(count, start + options.batch_size);
    consume(start, generate_batch(model, diffusion, labels(start, end), options, b));
  }
}

torch::Tensor generate(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const torch::Tensor& labels, const GenerateOptions& options,
                       const std::function<void(int64_t done)>& on_batch) {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) > 0,
                "generate: expected a non-empty [N] label tensor");
  std::vector<torch::Tensor> out;
  generate_batches(
      model, diffusion, labels.size(0),
      [&](int64_t start, int64_t end) { return labels.slice(0, start, end); }, options,
      [&](int64_t start, const torch::Tensor& images) {
        out.push_back(images);
        if (on_batch) on_batch(start + images.size(0));
      });
  return torch::cat(out);
}

torch::Tensor repeat_labels(const std::vector<int64_t>& classes, int64_t per_class) {
  auto c = torch::tensor(classes, torch::kLong);
  return c.repeat_interleave(per_class);
}

}  // namespace numeral
