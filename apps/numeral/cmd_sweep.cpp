// `numeral sweep`: the same seeds across classifier-free guidance weights, one labelled block per
// weight, to see what w does.
#include <fmt/core.h>

#include <chrono>
#include <cmath>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "numeral/train/trainer.h"
#include "options.h"
#include "sampling.h"

namespace numeral::cli {
namespace {

struct SweepCommand {
  RuntimeOptions runtime;
  std::string checkpoint;
  std::vector<double> weights = {0, 0.25, 0.5, 1, 2};
  std::vector<int64_t> digits;
  int64_t per_digit = 3;
  GenerateOptions generate;
  std::string out = "sweep.png";
  int scale = 3;
};

void run(SweepCommand& cmd, CLI::App& app) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  auto& sampler = cmd.generate.sampler;
  NUMERAL_CHECK(!cmd.weights.empty(), "--w: expected at least one weight");
  for (double w : cmd.weights) {
    NUMERAL_CHECK(std::isfinite(w), "--w {}: expected finite numbers", w);
  }
  const auto [device, trained, T, classes] =
      open_for_sampling(cmd.runtime, cmd.checkpoint, cmd.generate, cmd.digits);
  check_output_path(cmd.out, "--out");
  const auto labels = repeat_labels(classes, cmd.per_digit);

  const int64_t steps = sampler.resolved_steps(T);
  fmt::print("numeral sweep  checkpoint {}  device {}\n", trained.path.string(), device.str());
  fmt::print("  sampler {}, {} steps (T = {}), seed {}: {} images per weight\n", sampler.name,
             steps, T, cmd.generate.seed, labels.size(0));
  std::fflush(stdout);
  std::vector<torch::Tensor> images;
  std::vector<std::string> titles;
  for (double w : cmd.weights) {
    GenerateOptions options = cmd.generate;
    options.guidance = w;
    const auto start = std::chrono::steady_clock::now();
    images.push_back(generate(trained.model, trained.diffusion, labels, options));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    titles.push_back("w=" + format_weight(w));
    fmt::print("  {:<8} {:.1f} s ({:.1f} images/s)\n", titles.back(), seconds,
               static_cast<double>(labels.size(0)) / std::max(seconds, 1e-9));
    std::fflush(stdout);
  }
  std::vector<std::string> rows;
  for (int64_t c : classes) rows.push_back(std::to_string(c));
  const std::string title = fmt::format(
      "guidance sweep: {} {} steps, seed {} (same noise in every "
      "block)",
      sampler.name, steps, cmd.generate.seed);
  write_png(cmd.out, sweep_grid(images, titles, cmd.per_digit, rows, cmd.scale, title));
  fmt::print("  wrote {} ({} blocks of {} rows x {} samples)\n", cmd.out, titles.size(),
             classes.size(), cmd.per_digit);
}

const bool kRegistered = register_command(/*order=*/56, [](CLI::App& app) {
  auto cmd = std::make_shared<SweepCommand>();
  auto* sub = app.add_subcommand(
      "sweep", "compare classifier-free guidance weights on the same seeds (a PNG grid)");
  sub->add_option("--checkpoint", cmd->checkpoint, "run directory or checkpoint file")->required();
  sub->add_option("--w", cmd->weights, "guidance weights, one block each")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--digit", cmd->digits, "digits, one row each (default: all)")->delimiter(',');
  sub->add_option("--per-digit", cmd->per_digit, "samples per digit in each block")
      ->capture_default_str()
      ->check(between(1, 32));
  sub->add_option("--seed", cmd->generate.seed, "noise seed, shared by every block")
      ->capture_default_str();
  add_generate_options(*sub, cmd->generate);
  add_sampler_options(*sub, cmd->generate.sampler);
  sub->add_option("--out,-o", cmd->out, "PNG to write")->capture_default_str();
  sub->add_option("--scale", cmd->scale, "upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16));
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
