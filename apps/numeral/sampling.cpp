#include "sampling.h"

#include "numeral/common/runtime.h"
#include "numeral/generate/generate.h"
#include "numeral/generate/request.h"

namespace numeral::cli {

SamplingSetup open_for_sampling(const RuntimeOptions& runtime, const std::string& checkpoint,
                                GenerateOptions& generate, const std::vector<int64_t>& digits) {
  configure_threads(runtime.threads);
  const torch::Device device = select_device(runtime.device);
  TrainedModel trained = load_trained_model(checkpoint, device);
  const int64_t T = trained.diffusion->T();
  generate = options_for(trained, generate);
  generate.sampler.validate(T);
  auto classes = resolve_classes(digits, trained.config.model.num_classes);
  return {device, std::move(trained), T, std::move(classes)};
}

}  // namespace numeral::cli
