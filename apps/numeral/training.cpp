#include "training.h"

#include <fmt/core.h>

#include <cstdio>

namespace numeral::cli {

TrainerOptions trainer_options(const std::string& run_dir, torch::Device device, bool resume) {
  TrainerOptions options;
  options.run_dir = run_dir;
  options.device = device;
  options.resume = resume;
  options.print = [](const std::string& line) { fmt::print("{}\n", line), std::fflush(stdout); };
  return options;
}

TrainResult run_trainer(Trainer& trainer, const InterruptScope& interrupts,
                        const std::string& run_dir, const std::string& command,
                        const std::function<std::string(const TrainResult&)>& stopped) {
  trainer.set_stop_flag(&interrupts.flag());
  const TrainResult result = trainer.run();
  if (result.interrupted) {
    fmt::print("stopped at {}; checkpoint saved. Continue with: numeral {} --run-dir {} --resume\n",
               stopped(result), command, run_dir);
    throw Interrupted(interrupts.signal(),
                      fmt::format("checkpoint of step {} saved in {}", result.steps, run_dir));
  }
  return result;
}

}  // namespace numeral::cli
