#pragma once
// What every generation command (sample, sweep, trajectory) does before it samples.
#include <string>

#include "numeral/cli.h"
#include "numeral/common/progress.h"
#include "numeral/inference/pipeline.h"

namespace numeral::cli {

// The checkpoint `command` (sample, serve) opens: `checkpoint` (its --checkpoint) when given, else
// the shipped student models/mnist-student.safetensors (4 network calls a digit; models/README.md
// gives its numbers against the teacher's), looked for beside the working directory and beside the
// binary's source tree (build/numeral -> models/); fails naming `command` and where it looked.
std::string checkpoint_or_default(const std::string& checkpoint, const std::string& command);

// The model's own defaults for the request fields `command`'s flags left out: the guidance weight
// (TrainedModel::default_w) unless --w was given, and the autoguidance weight
// (TrainedModel::default_w_guide) unless --w-guide was. Call once the checkpoint is loaded.
void apply_model_defaults(const CLI::App& command, const TrainedModel& model,
                          GenerateRequest& request);

// --guide CHECKPOINT (autoguidance's weaker model), bound to `guide`; its help text in one place.
void add_guide_option(CLI::App& command, std::string& guide);

// The model at `checkpoint` on `device`, autoguided by the model at `guide` when it is not empty
// (attach_guide checks that the two belong together).
TrainedModel load_guided_model(const std::string& checkpoint, const std::string& guide,
                               torch::Device device);

// Sets the threads, selects the device and opens `checkpoint` (autoguided by `guide`, if given) as
// a Pipeline.
Pipeline open_pipeline(const RuntimeOptions& runtime, const std::string& checkpoint,
                       const ExecutionOptions& execution = {}, const std::string& guide = "");

// Progress a person can watch in a terminal while a request runs: images done, the step of the
// current batch, images/s and the ETA (a ProgressBar on stderr; silent when it is not a terminal).
class GenerationProgress {
 public:
  GenerationProgress(std::string label, int64_t images);
  // The observer that drives the bar.
  GenerateObserver observer();
  void finish();

 private:
  std::shared_ptr<ProgressBar> bar_;
};

}  // namespace numeral::cli
