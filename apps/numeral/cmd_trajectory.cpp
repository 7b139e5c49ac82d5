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
  std::string guide;  // autoguidance's weaker model
  int64_t frames = 10;
  GenerateRequest request;
  ExecutionOptions execution;  // its batch_size: at least the digits asked for
  std::string out = "trajectory.png", gif;
  int scale = 3, gif_scale = 2;
};

void run(TrajectoryCommand& cmd, const CLI::App& command) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  NUMERAL_CHECK(cmd.frames >= 2, "--frames {}: expected at least 2 (pure noise and the result)",
                cmd.frames);
  cmd.request.per_class = 1;
  // Batch 0 of `numeral sample` with its default batch size: the same noise, the same images.
  ExecutionOptions execution = cmd.execution;
  execution.batch_size = std::max<int64_t>(
      execution.batch_size,
      cmd.request.classes.empty() ? 0 : static_cast<int64_t>(cmd.request.classes.size()));
  const Pipeline pipeline = open_pipeline(cmd.runtime, cmd.checkpoint, execution, cmd.guide);
  apply_model_defaults(command, pipeline.model(), cmd.request);
  const GenerateRequest request = pipeline.resolve(cmd.request);
  const auto& sampler = request.sampler;
  const auto& classes = request.classes;
  check_output_path(cmd.out, "--out");
  if (!cmd.gif.empty()) check_output_path(cmd.gif, "--gif");
  const int64_t T = pipeline.T();
  const int64_t steps = sampler.resolved_steps(T);
  const std::string w = format_weight(request.w);
  fmt::print("numeral trajectory  checkpoint {}  device {}{}\n", pipeline.model().path.string(),
             pipeline.device().str(), precision_addition(execution.precision));
  fmt::print("  sampler {}, {} steps (T = {}), w={}, seed {}, {} digit{}\n", sampler.name, steps, T,
             w, request.seed, classes.size(), classes.size() == 1 ? "" : "s");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const Trajectory trajectory = record_trajectory(pipeline, request);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> labels;
  for (int64_t c : classes) labels.push_back(std::to_string(c));
  const auto frames = trajectory_frames(trajectory.steps(), cmd.frames);
  const std::string title = fmt::format("reverse process: {} {} steps, w={}, seed {}", sampler.name,
                                        steps, w, request.seed);
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
  add_guide_option(*sub, cmd->guide);
  sub->add_option("--frames", cmd->frames,
                  "grid columns, evenly spaced from pure noise to the result")
      ->capture_default_str();
  add_request_options(*sub, cmd->request, {"per_class", "unconditional"});
  sub->add_option("--out,-o", cmd->out, "PNG grid to write")->capture_default_str();
  sub->add_option("--gif", cmd->gif, "also write an animated GIF, one frame per step");
  sub->add_option("--scale", cmd->scale, "upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16));
  sub->add_option("--gif-scale", cmd->gif_scale, "GIF upscaling factor (noise compresses badly)")
      ->capture_default_str()
      ->check(between(1, 16));
  add_execution_options(*sub, cmd->execution, {"batch_size"});
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
