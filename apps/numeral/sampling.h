#pragma once
// What every generation command (sample, sweep, trajectory) does before it samples.
#include <string>

#include "numeral/cli.h"
#include "numeral/common/progress.h"
#include "numeral/inference/pipeline.h"

namespace numeral::cli {

// Sets the threads, selects the device and opens `checkpoint` as a Pipeline.
Pipeline open_pipeline(const RuntimeOptions& runtime, const std::string& checkpoint,
                       const ExecutionOptions& execution = {});

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
