#include "numeral/generate/generate.h"

#include "numeral/common/error.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/train/trainer.h"

namespace numeral {

torch::Tensor generate(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                       const torch::Tensor& labels, const GenerateOptions& options,
                       const std::function<void(int64_t done)>& on_batch) {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) > 0, "generate: expected a non-empty [N] "
                "label tensor");
  NUMERAL_CHECK(options.batch_size >= 1, "--batch-size {}: expected at least 1",
                options.batch_size);
  const auto& cfg = model->config();
  NUMERAL_CHECK(labels.max().item<int64_t>() < cfg.num_classes,
                "generate: label {} out of range for a model of {} classes",
                labels.max().item<int64_t>(), cfg.num_classes);
  options.sampler.validate(diffusion->T());
  torch::NoGradGuard no_grad;
  model->eval();
  const auto device = model->parameters().front().device();
  const ModelFn eps = eps_model(model, diffusion);
  const int64_t n = labels.size(0);
  std::vector<torch::Tensor> out;
  for (int64_t start = 0, b = 0; start < n; start += options.batch_size, ++b) {
    const int64_t end = std::min(n, start + options.batch_size);
    auto gen = make_generator(options.seed * 1000003ULL + static_cast<uint64_t>(b));
    const auto y = labels.slice(0, start, end).to(device);
    const auto x_T = randn_on({end - start, cfg.image_channels, cfg.image_size, cfg.image_size},
                              gen, device);
    const auto denoiser = classifier_free_guidance(eps, y, options.guidance);
    out.push_back(sample(diffusion->schedule_f64(), denoiser, x_T, options.sampler, gen)
                      .clamp(-1, 1)
                      .to(torch::kCPU));
    if (on_batch) on_batch(end);
  }
  return torch::cat(out);
}

torch::Tensor repeat_labels(const std::vector<int64_t>& classes, int64_t per_class) {
  auto c = torch::tensor(classes, torch::kLong);
  return c.repeat_interleave(per_class);
}

}  // namespace numeral
