#include "sampling.h"

#include <fmt/format.h>

#include <filesystem>
#include <vector>

#include "numeral/common/error.h"
#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"

namespace numeral::cli {

std::string checkpoint_or_default(const std::string& checkpoint, const std::string& command) {
  namespace fs = std::filesystem;
  if (!checkpoint.empty()) return checkpoint;
  const std::string file = "mnist-student.safetensors";
  std::vector<fs::path> candidates = {fs::path("models") / file};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / "models" / file);
    candidates.push_back(exe.parent_path().parent_path() / "models" / file);
  }
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return c.string();
  }
  fail(
      "{}: no --checkpoint and no shipped model at models/{} (looked in the working directory and "
      "beside the binary)",
      command, file);
}

void apply_model_defaults(const CLI::App& command, const TrainedModel& model,
                          GenerateRequest& request) {
  const CLI::Option* w = command.get_option_no_throw("--w");
  if (w == nullptr || w->count() == 0) request.w = model.default_w;
  const CLI::Option* w_guide = command.get_option_no_throw("--w-guide");
  if (w_guide == nullptr || w_guide->count() == 0) request.w_guide = model.default_w_guide;
}

void add_guide_option(CLI::App& command, std::string& guide) {
  command.add_option("--guide", guide,
                     "autoguidance's weaker model of the same data (an earlier or smaller run), "
                     "which --w-guide guides away from; replaces a guide the file bundles");
}

TrainedModel load_guided_model(const std::string& checkpoint, const std::string& guide,
                               torch::Device device) {
  TrainedModel model = load_trained_model(checkpoint, device);
  if (!guide.empty()) attach_guide(model, load_trained_model(guide, device));
  return model;
}

Pipeline open_pipeline(const RuntimeOptions& runtime, const std::string& checkpoint,
                       const ExecutionOptions& execution, const std::string& guide) {
  configure_threads(runtime.threads);
  return Pipeline(load_guided_model(checkpoint, guide, select_device(runtime.device)), execution);
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
