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
  std::string guide;  // autoguidance's weaker model
  std::vector<double> weights = {0, 0.25, 0.5, 1, 2};
  GenerateRequest request;
  ExecutionOptions execution;
  std::string out = "sweep.png";
  int scale = 3;
};

void run(SweepCommand& cmd, const CLI::App& command) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  NUMERAL_CHECK(!cmd.weights.empty(), "--w: expected at least one weight");
  const Pipeline pipeline = open_pipeline(cmd.runtime, cmd.checkpoint, cmd.execution, cmd.guide);
  apply_model_defaults(command, pipeline.model(), cmd.request);  // w_guide; --w is the sweep's
  std::vector<GenerateRequest> requests;
  for (double w : cmd.weights) {
    GenerateRequest r = cmd.request;
    r.w = w;
    requests.push_back(pipeline.resolve(r));  // every weight checked before any sampling
  }
  const auto& sampler = requests.front().sampler;
  const auto& classes = requests.front().classes;
  const int64_t per_digit = cmd.request.per_class;
  check_output_path(cmd.out, "--out");
  const int64_t T = pipeline.T();
  const int64_t steps = sampler.resolved_steps(T);
  const int64_t count = requests.front().count(pipeline.num_classes());
  fmt::print("numeral sweep  checkpoint {}  device {}\n", pipeline.model().path.string(),
             pipeline.device().str());
  const GenerateRequest& first = requests.front();
  const auto& guide = pipeline.model().guide;
  const std::filesystem::path guide_path = guide ? guide->path : std::filesystem::path();
  fmt::print("  sampler {}, {} steps (T = {}){}, seed {}: {} images per weight\n", sampler.name,
             steps, T, guidance_additions(first.w_interval, first.w_guide, guide_path.string()),
             cmd.request.seed, count);
  std::fflush(stdout);
  std::vector<torch::Tensor> images;
  std::vector<std::string> titles;
  for (const GenerateRequest& r : requests) {
    titles.push_back("w=" + format_weight(r.w));
    GenerationProgress progress(titles.back(), count);
    const GenerateResult result = pipeline.generate(r, progress.observer());
    progress.finish();
    images.push_back(result.images);
    fmt::print("  {:<8} {:.1f} s ({:.1f} images/s)\n", titles.back(), result.seconds,
               static_cast<double>(count) / std::max(result.seconds, 1e-9));
    std::fflush(stdout);
  }
  std::vector<std::string> rows;
  for (int64_t c : classes) rows.push_back(std::to_string(c));
  const std::string title = fmt::format(
      "guidance sweep: {} {} steps{}, seed {} (same noise in every block)", sampler.name, steps,
      guidance_additions(first.w_interval, first.w_guide, guide_path.filename().string()),
      cmd.request.seed);
  write_png(cmd.out, sweep_grid(images, titles, per_digit, rows, cmd.scale, title));
  fmt::print("  wrote {} ({} blocks of {} rows x {} samples)\n", cmd.out, titles.size(),
             classes.size(), per_digit);
}

const bool kRegistered = register_command(/*order=*/56, [](CLI::App& app) {
  auto cmd = std::make_shared<SweepCommand>();
  auto* sub = app.add_subcommand(
      "sweep", "compare classifier-free guidance weights on the same seeds (a PNG grid)");
  sub->add_option("--checkpoint", cmd->checkpoint, "run directory or checkpoint file")->required();
  add_guide_option(*sub, cmd->guide);
  sub->add_option("--w", cmd->weights, "guidance weights, one block each")
      ->delimiter(',')
      ->capture_default_str();
  cmd->request.per_class = 3;
  add_request_options(*sub, cmd->request, {"w", "unconditional"});
  sub->get_option("--per-class")->check(between(1, 32));  // a block's width in the picture
  add_execution_options(*sub, cmd->execution);
  sub->add_option("--out,-o", cmd->out, "PNG to write")->capture_default_str();
  sub->add_option("--scale", cmd->scale, "upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16));
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
