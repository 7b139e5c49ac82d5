// `numeral noise`: the forward process on real digits, as one labelled PNG strip, with abar_t of
// every frame; the schedule comes from a checkpoint or from the diffusion flags.
#include <fmt/core.h>

#include <cmath>
#include <optional>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/data/dataset.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "numeral/train/trainer.h"
#include "options.h"

namespace numeral::cli {
namespace {

struct NoiseCommand {
  std::string checkpoint;
  DiffusionConfig diffusion;
  DataOptions data;
  std::vector<int64_t> index, digits;
  std::vector<double> fractions = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
  uint64_t seed = 0;
  std::string out = "noise.png";
  int scale = 3;
};

// The training images to show: by index, or the first of each requested class.
std::vector<int64_t> pick_images(const NoiseCommand& cmd, const DataSplit& split) {
  const Dataset& train = split.train;
  if (!cmd.digits.empty()) {
    std::vector<int64_t> picked;
    for (int64_t d : cmd.digits) {
      NUMERAL_CHECK(d >= 0 && d < split.num_classes, "--digit {}: {} has classes 0 to {}", d,
                    split.name, split.num_classes - 1);
      const auto hits = train.labels.eq(d).nonzero();
      NUMERAL_CHECK(hits.size(0) > 0, "--digit {}: no such image in {}", d, split.name);
      picked.push_back(hits[0][0].item<int64_t>());
    }
    return picked;
  }
  const std::vector<int64_t> picked = cmd.index.empty() ? std::vector<int64_t>{0} : cmd.index;
  for (int64_t i : picked) {
    NUMERAL_CHECK(i >= 0 && i < train.size(), "--index {}: {} has training images 0 to {}", i,
                  split.name, train.size() - 1);
  }
  return picked;
}

void run(NoiseCommand& cmd, CLI::App& app) {
  NUMERAL_CHECK(cmd.index.empty() || cmd.digits.empty(), "--index and --digit exclude each other");
  DiffusionConfig diffusion = cmd.diffusion;
  std::string origin = "flags";
  std::optional<NoiseSchedule> learned;  // from the checkpoint, when the run learned its schedule
  if (!cmd.checkpoint.empty()) {
    for (const char* flag : {"--timesteps", "--schedule", "--zero-terminal-snr", "--prediction",
                             "--min-snr-gamma", "--sigma-data"}) {
      NUMERAL_CHECK(app.count(flag) == 0, "{} conflicts with --checkpoint, whose schedule is used",
                    flag);
    }
    const TrainedModel trained = load_trained_model(cmd.checkpoint, torch::kCPU);
    diffusion = trained.config.diffusion;
    origin = trained.path.string();
    if (diffusion.schedule == Schedule::learned) learned = trained.diffusion->schedule_f64();
  }
  NUMERAL_CHECK(diffusion.schedule != Schedule::learned || learned,
                "--schedule learned is learned in training; pass --checkpoint of a run that "
                "learned it");
  diffusion.validate();
  NUMERAL_CHECK(!cmd.fractions.empty(), "--fractions: expected at least one fraction");
  for (double f : cmd.fractions) {
    NUMERAL_CHECK(std::isfinite(f) && f >= 0 && f <= 1,
                  "--fractions: {} is not a fraction of T in [0, 1]", f);
  }
  check_output_path(cmd.out, "--out");
  const NoiseSchedule schedule = learned ? *learned : NoiseSchedule::from_config(diffusion);
  DataOptions data = cmd.data;
  data.val_fraction = 0;  // --index counts in the training file, nothing held out
  const DataSplit split = load_data(data);
  const auto picked = pick_images(cmd, split);
  const auto x0 =
      to_model_range(split.train.images.index_select(0, torch::tensor(picked, torch::kLong)));
  const NoiseProgression p = noise_progression(schedule, x0, cmd.fractions, cmd.seed);

  std::vector<std::string> rows;
  fmt::print("numeral noise  {} schedule, T = {} (from {}), {} image{} from {}\n",
             diffusion.schedule, diffusion.timesteps, origin, picked.size(),
             picked.size() == 1 ? "" : "s", split.name);
  for (int64_t i : picked) {
    const int64_t label = split.train.labels[i].item<int64_t>();
    rows.push_back(split.class_names.at(static_cast<size_t>(label)));
    fmt::print("  row {}: training image {} (label {})\n", rows.size(), i, rows.back());
  }
  fmt::print("  {:>8} {:>6} {:>10} {:>14} {:>16}\n", "fraction", "t", "abar_t", "sqrt(abar_t)",
             "sqrt(1-abar_t)");
  for (size_t i = 0; i < p.fractions.size(); ++i) {
    fmt::print("  {:>7g}% {:>6} {:>10.4g} {:>14.6f} {:>16.6f}\n", p.fractions[i] * 100,
               p.t[i] < 0 ? std::string("clean") : std::to_string(p.t[i]), p.abar[i],
               std::sqrt(p.abar[i]), std::sqrt(1 - p.abar[i]));
  }
  const std::string title =
      fmt::format("forward process: {} schedule, T={}{}", diffusion.schedule, diffusion.timesteps,
                  diffusion.zero_terminal_snr ? ", zero terminal SNR" : "");
  write_png(cmd.out, noise_strip(p, rows, cmd.scale, title));
  fmt::print("  wrote {}\n", cmd.out);
}

const bool kRegistered = register_command(/*order=*/52, [](CLI::App& app) {
  auto cmd = std::make_shared<NoiseCommand>();
  auto* sub = app.add_subcommand(
      "noise", "show the forward noise process on real digits at fractions of T (a PNG strip)");
  sub->add_option("--checkpoint", cmd->checkpoint,
                  "take the schedule from this run or checkpoint (else from the diffusion flags)");
  add_diffusion_options(*sub, cmd->diffusion);
  sub->add_option("--data", cmd->data.data, "mnist, fashion-mnist or a directory of IDX files")
      ->capture_default_str();
  sub->add_option("--root", cmd->data.root, "data directory (default $NUMERAL_DATA or ./data)");
  sub->add_option("--index", cmd->index,
                  "training images to show, one row each, e.g. 0 or 0,5,9 (default 0)")
      ->delimiter(',');
  sub->add_option("--digit", cmd->digits, "show the first training image of each class, e.g. 3,8")
      ->delimiter(',');
  sub->add_option("--fractions", cmd->fractions,
                  "fractions f of the process; frame f shows t = round(f*(T-1)), 0 = the clean "
                  "image")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--seed", cmd->seed, "seed of the noise (one draw per row, shared by its frames)")
      ->capture_default_str();
  sub->add_option("--out,-o", cmd->out, "PNG to write")->capture_default_str();
  sub->add_option("--scale", cmd->scale, "upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16));
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
