// `numeral train`: trains a class-conditional diffusion model into a run directory.
#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/generate/preview.h"
#include "numeral/inference/trained_model.h"
#include "numeral/io/checkpoint.h"
#include "numeral/train/distributed.h"
#include "numeral/train/trainer.h"
#include "options.h"
#include "training.h"

namespace numeral::cli {
namespace {

struct TrainCommand {
  RunConfig config;
  RuntimeOptions runtime;
  std::string run_dir;
  bool resume = false;
  DistOptions dist;  // flags; the torchrun variables fill what is not given
};

std::string default_run_dir(const std::string& data) {
  std::string name = std::filesystem::path(data).filename().string();
  if (name.empty()) name = "data";
  return fmt::format("runs/{}-{:%Y%m%d-%H%M%S}", name, fmt::localtime(std::time(nullptr)));
}

// Flags a resumed run may change: its length and output cadence (and, outside the config,
// --threads and --device). Everything else would change the model, the data, the split or the
// optimisation the checkpoint holds.
const std::set<std::string> kResumableFields = {"epochs", "max_steps", "checkpoint_every",
                                                "preview_every"};
// Flags of `numeral train` that are not config fields.
const std::set<std::string> kNonConfigFlags = {
    "run-dir",    "resume",     "device",      "threads",     "help",         "rank",
    "world-size", "local-rank", "master-addr", "master-port", "dist-backend", "dist-timeout"};

// Sends this process's stdout to /dev/null: a group's other ranks print errors (stderr) alone.
void silence_stdout() {
  std::fflush(stdout);
  const int null = ::open("/dev/null", O_WRONLY);
  if (null < 0) return;
  ::dup2(null, STDOUT_FILENO);
  ::close(null);
}

// The group this process belongs to: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT,
// overridden by the flags of the same meaning.
DistOptions group_options(const DistOptions& flags, const CLI::App& app) {
  DistOptions d = dist_options_from_environment();
  const auto given = [&](const char* flag) { return app.get_option(flag)->count() > 0; };
  if (given("--rank")) d.rank = flags.rank;
  if (given("--world-size")) d.world_size = flags.world_size;
  if (given("--local-rank")) d.local_rank = flags.local_rank;
  if (given("--master-addr")) d.master_addr = flags.master_addr;
  if (given("--master-port")) d.master_port = flags.master_port;
  d.backend = flags.backend;
  d.timeout_s = flags.timeout_s;
  d.validate();
  return d;
}

// A config value as it would be typed after its flag: 8,8,16 rather than [8,8,16].
std::string as_flag_value(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array()) return value.dump();
  std::vector<std::string> items;
  for (const auto& item : value) items.push_back(as_flag_value(item));
  return fmt::format("{}", fmt::join(items, ","));
}

// A config flag given on this command line: its section ("model", "diffusion" or "train") and
// field.
struct GivenFlag {
  std::string flag, section, field;
};
std::vector<GivenFlag> given_config_flags(const CLI::App& app, const nlohmann::json& config) {
  std::vector<GivenFlag> given;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_lnames().empty()) continue;
    const std::string flag = option->get_lnames().front();
    if (kNonConfigFlags.count(flag)) continue;
    std::string field = flag;
    std::replace(field.begin(), field.end(), '-', '_');
    const char* section = nullptr;
    for (const char* s : {"model", "diffusion", "train"}) {
      if (config.at(s).contains(field)) section = s;
    }
    NUMERAL_CHECK(section != nullptr, "--{} cannot be checked against the stored run; drop it",
                  flag);
    given.push_back({flag, section, field});
  }
  return given;
}

// The run's stored config with the resumable flags given on this command line applied; any other
// flag that differs from the stored value is refused, naming the flag and both values. `changes`
// receives "--epochs 20 (was 10)" for each change.
RunConfig resumed_config(const RunConfig& stored, const RunConfig& given, const CLI::App& app,
                         std::vector<std::string>& changes) {
  nlohmann::json merged = stored;
  const nlohmann::json requested = given;
  for (const GivenFlag& g : given_config_flags(app, merged)) {
    const auto& was = merged[g.section][g.field];
    const auto& now = requested.at(g.section).at(g.field);
    if (was == now) continue;
    NUMERAL_CHECK(kResumableFields.count(g.field),
                  "--resume continues the run as it was configured: --{} is {} here but {} in "
                  "the run; drop it or start a new run (a resumed run may change only --epochs, "
                  "--max-steps, --checkpoint-every, --preview-every, --threads and --device)",
                  g.flag, as_flag_value(now), as_flag_value(was));
    changes.push_back(
        fmt::format("--{} {} (was {})", g.flag, as_flag_value(now), as_flag_value(was)));
    merged[g.section][g.field] = now;
  }
  return merged.get<RunConfig>();
}

// A new run that starts from a trained model (--init-from) takes that model's model and diffusion
// settings (its number of classes follows the data); a model or diffusion flag given here must
// agree with them.
RunConfig init_from_config(const RunConfig& source, RunConfig given, const CLI::App& app) {
  const nlohmann::json was = source, now = given;
  for (const GivenFlag& g : given_config_flags(app, was)) {
    if (g.section == "train" || g.field == "num_classes") continue;
    NUMERAL_CHECK(was[g.section][g.field] == now[g.section][g.field],
                  "--init-from {} keeps that model's settings: --{} is {} here but {} there; drop "
                  "it",
                  given.train.init_from, g.flag, as_flag_value(now[g.section][g.field]),
                  as_flag_value(was[g.section][g.field]));
  }
  const int64_t num_classes = given.model.num_classes;
  given.model = source.model;
  given.model.num_classes = num_classes;  // 0 unless given: the data's
  given.diffusion = source.diffusion;
  return given;
}

void run(TrainCommand& cmd, CLI::App& app) {
  const DistOptions dist = group_options(cmd.dist, app);
  torch::Device device = select_device(cmd.runtime.device);
  if (dist.enabled() && device.is_cuda() && !device.has_index()) {
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(dist.local_rank));
  }
  const int threads = configure_threads(cmd.runtime.threads);
  if (cmd.run_dir.empty()) {
    NUMERAL_CHECK(!cmd.resume, "--resume needs --run-dir RUN");
    cmd.run_dir = default_run_dir(cmd.config.train.data);
  }
  RunConfig config = cmd.config;
  std::vector<std::string> changes;
  if (cmd.resume) {
    const Checkpoint stored = load_checkpoint(std::filesystem::path(cmd.run_dir), "diffusion");
    config = resumed_config(stored.config.get<RunConfig>(), cmd.config, app, changes);
  } else {
    // What the command line leaves open follows the data: its image size, channels and classes,
    // and widths for that size (resolve_from_data).
    const auto given = [&](const char* flag) { return app.get_option(flag)->count() > 0; };
    if (!given("--image-size")) config.model.image_size = 0;
    if (!given("--image-channels")) config.model.image_channels = 0;
    if (!given("--num-classes")) config.model.num_classes = 0;
    if (!given("--channels")) config.model.channels.clear();
    if (!config.train.init_from.empty()) {
      const TrainedModel source = load_trained_model(config.train.init_from, torch::kCPU);
      config = init_from_config(source.config, config, app);
    }
  }
  fmt::print("numeral train  run {}  device {}  threads {}\n", cmd.run_dir, device.str(), threads);
  if (!changes.empty()) fmt::print("  resumed with {}\n", fmt::join(changes, ", "));

  InterruptScope interrupts;  // SIGINT, SIGTERM: checkpoint at the next step, then stop
  TrainerOptions options = trainer_options(cmd.run_dir, device, cmd.resume);
  if (dist.enabled()) {
    options.parallel = std::make_shared<DataParallel>(dist, device);
    fmt::print("  group:     rank {} of {} ({}, {}:{}); batch {} per rank, global batch {}\n",
               dist.rank, dist.world_size, options.parallel->backend(), dist.master_addr,
               dist.master_port, config.train.batch_size,
               config.train.batch_size * dist.world_size);
    std::fflush(stdout);
    // Only rank 0 speaks (and writes the run directory); the others print errors alone.
    if (!options.parallel->is_main()) silence_stdout();
  }
  Trainer trainer(config, options);
  config = trainer.config();
  const nlohmann::json j = config;
  fmt::print("  model:     {}\n  diffusion: {}\n  train:     {}\n", j["model"].dump(),
             j["diffusion"].dump(), j["train"].dump());
  fmt::print("  data:      {} ({}); {} train, {} held out ({})\n", trainer.data().name,
             trainer.data().source, trainer.data().train.size(), trainer.data().val.size(),
             trainer.data().split);
  fmt::print("  model has {:.2f} M parameters\n", parameter_count(*trainer.model()) / 1e6);
  std::fflush(stdout);
  std::unique_ptr<PreviewWriter> preview;
  if (config.train.preview_every > 0) {
    preview = std::make_unique<PreviewWriter>(options.run_dir, trainer.data().class_names);
    trainer.set_epoch_callback([&](const EpochStats& stats) {
      if (stats.epoch % config.train.preview_every == 0) {
        preview->write(trainer.ema_model(), trainer.diffusion(), stats.epoch);
      }
    });
  }
  const TrainResult result =
      run_trainer(trainer, interrupts, cmd.run_dir, "train",
                  [](const TrainResult& r) { return fmt::format("step {}", r.steps); });
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
  auto& d = cmd->dist;
  const char* group = "Data parallel (several processes; `numeral launch` sets these)";
  sub->add_option("--rank", d.rank, "this process's rank in the group (default $RANK, else 0)")
      ->group(group);
  sub->add_option("--world-size", d.world_size,
                  "processes in the group (default $WORLD_SIZE, else 1: no group)")
      ->group(group);
  sub->add_option("--local-rank", d.local_rank,
                  "rank among this machine's processes: its GPU (default $LOCAL_RANK, else 0)")
      ->group(group);
  sub->add_option("--master-addr", d.master_addr,
                  "address of rank 0's machine (default $MASTER_ADDR, else 127.0.0.1)")
      ->group(group);
  sub->add_option("--master-port", d.master_port,
                  "port rank 0 serves the group on (default $MASTER_PORT, else 29500)")
      ->group(group);
  sub->add_option("--dist-backend", d.backend, "auto, gloo or nccl (auto: gloo in this build)")
      ->capture_default_str()
      ->group(group);
  sub->add_option("--dist-timeout", d.timeout_s,
                  "seconds to wait for the other ranks, to join and at every step")
      ->capture_default_str()
      ->group(group);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
