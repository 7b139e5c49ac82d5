#pragma once
// What `train` and `distill` share around the Trainer: its options on the command line, and what
// an interrupted run prints and throws.
#include <functional>
#include <string>

#include "numeral/common/signals.h"
#include "numeral/train/trainer.h"

namespace numeral::cli {

// TrainerOptions for a run in `run_dir`, with status lines printed (and flushed) on stdout.
TrainerOptions trainer_options(const std::string& run_dir, torch::Device device, bool resume);

// Runs `trainer` until done or until SIGINT/SIGTERM. An interrupted run prints `stopped` (e.g.
// "step 12") and the command that continues it, and throws Interrupted; a finished run returns.
TrainResult run_trainer(Trainer& trainer, const InterruptScope& interrupts,
                        const std::string& run_dir, const std::string& command,
                        const std::function<std::string(const TrainResult&)>& stopped);

}  // namespace numeral::cli
