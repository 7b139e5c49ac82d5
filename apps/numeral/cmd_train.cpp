// `numeral train`: trains a class-conditional diffusion model into a run directory.
#include <fmt/chrono.h>
#include <fmt/core.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/generate/preview.h"
#include "numeral/io/checkpoint.h"
#include "numeral/train/trainer.h"
#include "options.h"

namespace numeral::cli {
namespace {

struct TrainCommand {
  RunConfig config;
  RuntimeOptions runtime;
  std::string run_dir;
  bool resume = false;
};

std::string default_run_dir(const std::string& data) {
  std::string name = std::filesystem::path(data).filename().string();
  if (name.empty()) name = "data";
  return fmt::format("runs/{}-{:%Y%m%d-%H%M%S}", name, fmt::localtime(std::time(nullptr)));
}

void run(TrainCommand& cmd, CLI::App& app) {
  const torch::Device device = select_device(cmd.runtime.device);
  const int threads = configure_threads(cmd.runtime.threads);
  if (cmd.run_dir.empty()) {
    NUMERAL_CHECK(!cmd.resume, "--resume needs --run-dir RUN");
    cmd.run_dir = default_run_dir(cmd.config.train.data);
  }
  RunConfig config = cmd.config;
  if (cmd.resume) {
    // The stored config is authoritative; only the run's length and output cadence may change.
    config = load_checkpoint(std::filesystem::path(cmd.run_dir), "diffusion").config;
    if (app.count("--epochs")) config.train.epochs = cmd.config.train.epochs;
    if (app.count("--max-steps")) config.train.max_steps = cmd.config.train.max_steps;
    if (app.count("--checkpoint-every"))
      config.train.checkpoint_every = cmd.config.train.checkpoint_every;
    if (app.count("--preview-every")) config.train.preview_every = cmd.config.train.preview_every;
  }
  const nlohmann::json j = config;
  fmt::print("numeral train  run {}  device {}  threads {}\n", cmd.run_dir, device.str(), threads);
  fmt::print("  model:     {}\n  diffusion: {}\n  train:     {}\n", j["model"].dump(),
             j["diffusion"].dump(), j["train"].dump());

  TrainerOptions options;
  options.run_dir = cmd.run_dir;
  options.device = device;
  options.resume = cmd.resume;
  options.print = [](const std::string& line) { fmt::print("{}\n", line), std::fflush(stdout); };
  Trainer trainer(config, options);
  fmt::print("  data:      {} ({}); {} train, {} held out ({})\n", trainer.data().name,
             trainer.data().source, trainer.data().train.size(), trainer.data().val.size(),
             trainer.data().split);
  fmt::print("  model has {:.2f} M parameters\n", parameter_count(*trainer.model()) / 1e6);
  std::fflush(stdout);
  std::unique_ptr<PreviewWriter> preview;
  if (config.train.preview_every > 0) {
    preview = std::make_unique<PreviewWriter>(options.run_dir, config.model.num_classes);
    trainer.set_epoch_callback([&](const EpochStats& stats) {
      if (stats.epoch % config.train.preview_every == 0) {
        preview->write(trainer.ema_model(), trainer.diffusion(), stats.epoch);
      }
    });
  }
  InterruptScope interrupts;  // Ctrl-C: checkpoint at the next step, then stop
  trainer.set_stop_flag(&interrupts.flag());
  const TrainResult result = trainer.run();
  if (result.interrupted) {
    fmt::print(
        "interrupted at step {}; checkpoint saved. Continue with: numeral train --run-dir "
        "{} --resume\n",
        result.steps, cmd.run_dir);
    return;
  }
  fmt::print("done: {} steps; checkpoint {}/checkpoint.safetensors, log {}/log.jsonl\n",
             result.steps, cmd.run_dir, cmd.run_dir);
}

const bool kRegistered = register_command(/*order=*/30, [](CLI::App& app) {
  auto cmd = std::make_shared<TrainCommand>();
  auto* sub = app.add_subcommand("train", "train a class-conditional diffusion model");
  add_train_options(*sub, cmd->config.train);
  add_model_options(*sub, cmd->config.model);
  add_diffusion_options(*sub, cmd->config.diffusion);
  sub->add_option("--run-dir", cmd->run_dir,
                  "where config.json, log.jsonl and checkpoint.safetensors go "
                  "(default runs/<data>-<time>)");
  sub->add_flag("--resume", cmd->resume, "continue the run in --run-dir from its checkpoint");
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
