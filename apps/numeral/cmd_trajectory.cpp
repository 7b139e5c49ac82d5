// `numeral trajectory`: the reverse process step by step, x_t and the model's x_0 estimate, as a
// PNG grid and an animated GIF. Its images are those `numeral sample --per-digit 1` makes with the
// same seed and digits.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>

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

constexpr int64_t kMaxGifFrames = 250;

struct TrajectoryCommand {
  RuntimeOptions runtime;
  std::string checkpoint;
  std::vector<int64_t> digits;
  int64_t frames = 10;
  GenerateOptions generate;
  std::string out = "trajectory.png", gif;
  int scale = 3, gif_scale = 2;
};

void run(TrajectoryCommand& cmd, CLI::App& app) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  auto& sampler = cmd.generate.sampler;
  NUMERAL_CHECK(cmd.frames >= 2, "--frames {}: expected at least 2 (pure noise and the result)",
                cmd.frames);
  const auto [device, trained, T, classes] =
      open_for_sampling(cmd.runtime, cmd.checkpoint, cmd.generate, cmd.digits);
  check_output_path(cmd.out, "--out");
  if (!cmd.gif.empty()) check_output_path(cmd.gif, "--gif");
  // Batch 0 of `numeral sample` with its default batch size: the same noise, the same images.
  cmd.generate.batch_size =
      std::max<int64_t>(cmd.generate.batch_size, static_cast<int64_t>(classes.size()));

  const int64_t steps = sampler.resolved_steps(T);
  const std::string w = format_weight(cmd.generate.guidance);
  fmt::print("numeral trajectory  checkpoint {}  device {}\n", trained.path.string(), device.str());
  fmt::print("  sampler {}, {} steps (T = {}), w={}, seed {}, {} digit{}\n", sampler.name, steps, T,
             w, cmd.generate.seed, classes.size(), classes.size() == 1 ? "" : "s");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const Trajectory trajectory = record_trajectory(
      trained.model, trained.diffusion, torch::tensor(classes, torch::kLong), cmd.generate);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<std::string> labels;
  for (int64_t c : classes) labels.push_back(std::to_string(c));
  const auto frames = trajectory_frames(trajectory.steps(), cmd.frames);
  const std::string title = fmt::format("reverse process: {} {} steps, w={}, seed {}", sampler.name,
                                        steps, w, cmd.generate.seed);
  write_png(cmd.out, trajectory_grid(trajectory, frames, labels, cmd.scale, title));
  std::string shown;
  for (int64_t p : frames) {
    shown += p < trajectory.steps() ? fmt::format(" t={}", trajectory.t[p]) : " final";
  }
  fmt::print("  sampled in {:.1f} s; grid {} ({} frames:{})\n", seconds, cmd.out, frames.size(),
             shown);
  if (!cmd.gif.empty()) {
    std::vector<Image> all = trajectory_animation(trajectory, labels, cmd.gif_scale);
    // Long runs (T = 1000 DDPM) keep every k-th step so the GIF stays small.
    const auto stride =
        static_cast<size_t>((trajectory.steps() + kMaxGifFrames - 1) / kMaxGifFrames);
    std::vector<Image> gif;
    for (size_t i = 0; i + 1 < all.size(); i += stride) gif.push_back(all[i]);
    const int delay =
        static_cast<int>(std::clamp<int64_t>(600 / static_cast<int64_t>(gif.size()), 4, 25));
    for (int hold = 0; hold * delay < 150; ++hold)
      gif.push_back(all.back());  // ~1.5 s on the result
    write_gif(cmd.gif, gif, delay);
    fmt::print("  GIF {} ({} frames, {} ms each, result held ~1.5 s)\n", cmd.gif, gif.size(),
               delay * 10);
  }
}

const bool kRegistered = register_command(/*order=*/54, [](CLI::App& app) {
  auto cmd = std::make_shared<TrajectoryCommand>();
  auto* sub = app.add_subcommand(
      "trajectory", "show the reverse process step by step: x_t and the x_0 estimate (PNG, GIF)");
  sub->add_option("--checkpoint", cmd->checkpoint, "run directory or checkpoint file")->required();
  sub->add_option("--digit", cmd->digits, "digits to follow, one row each (default: all)")
      ->delimiter(',');
  sub->add_option("--frames", cmd->frames,
                  "grid columns, evenly spaced from pure noise to the result")
      ->capture_default_str();
  sub->add_option("--w", cmd->generate.guidance, "classifier-free guidance weight (0 = none)")
      ->capture_default_str();
  sub->add_option("--seed", cmd->generate.seed,
                  "noise seed; with the same digits, matches `numeral sample --per-digit 1`")
      ->capture_default_str();
  add_sampler_options(*sub, cmd->generate.sampler);
  sub->add_option("--out,-o", cmd->out, "PNG grid to write")->capture_default_str();
  sub->add_option("--gif", cmd->gif, "also write an animated GIF, one frame per step");
  sub->add_option("--scale", cmd->scale, "upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16));
  sub->add_option("--gif-scale", cmd->gif_scale, "GIF upscaling factor (noise compresses badly)")
      ->capture_default_str()
      ->check(between(1, 16));
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
