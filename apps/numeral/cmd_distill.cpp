// `numeral distill`: a few-step student from a trained model, trained into a run directory with
// the same checkpoint, resume and signal guarantees as `numeral train`.
#include <fmt/core.h>

#include <nlohmann/json.hpp>
#include <set>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/io/checkpoint.h"
#include "numeral/train/distill.h"
#include "options.h"
#include "training.h"

namespace numeral::cli {
namespace {

struct DistillCommand {
  DistillConfig distill;
  TrainConfig optimisation;
  RuntimeOptions runtime;
  std::string run_dir;
  bool resume = false;
};

// Flags that describe the data: a student trains on its teacher's, so these are refused.
const std::set<std::string> kTeacherDataFlags = {"--data",      "--val-fraction", "--split-seed",
                                                 "--limit",     "--per-class",    "--epochs",
                                                 "--max-steps", "--preview-every"};
// Flags a resumed distillation may give.
const std::set<std::string> kResumeFlags = {"--run-dir", "--resume", "--device", "--threads"};

void run(DistillCommand& cmd, CLI::App& app) {
  const torch::Device device = select_device(cmd.runtime.device);
  const int threads = configure_threads(cmd.runtime.threads);
  NUMERAL_CHECK(!cmd.run_dir.empty(), "distill: --run-dir is required");
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_lnames().empty()) continue;
    const std::string flag = "--" + option->get_lnames().front();
    NUMERAL_CHECK(!kTeacherDataFlags.count(flag),
                  "{}: a student trains on its teacher's data for --round-steps per round; drop "
                  "it",
                  flag);
    NUMERAL_CHECK(!cmd.resume || kResumeFlags.count(flag),
                  "--resume continues the distillation as it was configured: drop {} (a resumed "
                  "run may change only --threads and --device)",
                  flag);
  }
  RunConfig config;
  if (cmd.resume) {
    const Checkpoint stored = load_checkpoint(std::filesystem::path(cmd.run_dir), kStudentKind);
    config = stored.config.get<RunConfig>();
    NUMERAL_CHECK(config.distill.has_value(), "{}: corrupt student checkpoint: no distill config",
                  cmd.run_dir);
  }
  const DistillConfig& distill = cmd.resume ? *config.distill : cmd.distill;
  NUMERAL_CHECK(!distill.teacher.empty(), "distill: --teacher is required");
  TrainedModel teacher = load_trained_model(distill.teacher, device);
  check_teacher(teacher, distill);
  if (!cmd.resume) config = student_config(teacher, distill, cmd.optimisation);

  const nlohmann::json j = config;
  fmt::print("numeral distill  run {}  device {}  threads {}\n", cmd.run_dir, device.str(),
             threads);
  fmt::print("  teacher:   {} (step {})\n", teacher.path.string(),
             teacher.state.value("step", int64_t{0}));
  if (distill.w_guide != 0) {
    fmt::print("  guide:     {} (step {}), w_guide {:g} in round 1's targets\n",
               teacher.guide->path.string(), teacher.guide->state.value("step", int64_t{0}),
               distill.w_guide);
  }
  fmt::print("  distill:   {}\n  train:     {}\n", j["distill"].dump(), j["train"].dump());
  fmt::print("  rounds:    {} of {} steps: {} teacher steps -> {} student steps\n",
             distill.rounds(), distill.round_steps, distill.from_steps, distill.to_steps);
  std::fflush(stdout);

  InterruptScope interrupts;  // SIGINT, SIGTERM: checkpoint at the next step, then stop
  TrainerOptions options = trainer_options(cmd.run_dir, device, cmd.resume);
  auto objective = std::make_shared<ProgressiveDistillation>(distill, std::move(teacher));
  options.objective = objective;
  Trainer trainer(config, options);
  const TrainResult result =
      run_trainer(trainer, interrupts, cmd.run_dir, "distill", [&](const TrainResult& r) {
        return fmt::format("step {} (round {})", r.steps, objective->round() + 1);
      });
  fmt::print("done: {} steps; a {}-step student in {}/checkpoint.safetensors\n", result.steps,
             objective->student_steps(), cmd.run_dir);
}

const bool kRegistered = register_command(/*order=*/35, [](CLI::App& app) {
  auto cmd = std::make_shared<DistillCommand>();
  // Distillation's own optimisation defaults (Salimans & Ho 2022 restart the learning rate each
  // round; a short EMA lets each round's teacher follow its student).
  cmd->optimisation.lr = 5e-4;
  cmd->optimisation.warmup_steps = 100;
  cmd->optimisation.ema_decay = 0.995;
  cmd->optimisation.val_samples = 256;
  auto* sub = app.add_subcommand(
      "distill", "distil a trained model into a few-step student (progressive distillation)");
  add_distill_options(*sub, cmd->distill);
  add_train_options(*sub, cmd->optimisation, {"init_from"});  // it starts from its teacher
  sub->add_option("--run-dir", cmd->run_dir,
                  "where config.json, log.jsonl and checkpoint.safetensors go (required)");
  sub->add_flag("--resume", cmd->resume, "continue the distillation in --run-dir");
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
