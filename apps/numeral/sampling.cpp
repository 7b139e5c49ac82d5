#include "sampling.h"

#include <fmt/format.h>

#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"

namespace numeral::cli {

Pipeline open_pipeline(const RuntimeOptions& runtime, const std::string& checkpoint,
                       const ExecutionOptions& execution) {
  configure_threads(runtime.threads);
  return Pipeline(checkpoint, select_device(runtime.device), execution);
}

GenerationProgress::GenerationProgress(std::string label, int64_t images)
    : bar_(std::make_shared<ProgressBar>(std::move(label), images, "img")) {}

GenerateObserver GenerationProgress::observer() {
  GenerateObserver o;
  o.on_step = [this](const StepEvent& e) {
    const auto batch = static_cast<double>(e.step.x_t.size(0));
    const double fraction = static_cast<double>(e.step.index + 1) / e.step.steps;
    bar_->update(e.start, fmt::format("step {}/{}", e.step.index + 1, e.step.steps),
                 fraction * batch);
  };
  o.on_images = [this](int64_t done, int64_t /*total*/) { bar_->update(done); };
  return o;
}

void GenerationProgress::finish() {
  bar_->finish();
}

}  // namespace numeral::cli
