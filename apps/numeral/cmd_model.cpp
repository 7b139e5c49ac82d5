// `numeral model summary`: the U-Net's blocks, output shapes and parameter count, for a config
// given by flags or read from a checkpoint.
#include <fmt/core.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/io/checkpoint.h"
#include "numeral/model/unet.h"
#include "numeral/train/trainer.h"
#include "options.h"

namespace numeral::cli {
namespace {

struct ModelCommand {
  UNetConfig config;
  std::string checkpoint;
  std::string out;
  ExportOptions exported;
  double default_w = kDefaultGuidance;
  std::string guide;
  double default_w_guide = 0;
};

// "autoguided by GUIDE (step N) at w_guide W by default" for a model with a guide; "" without.
std::string guide_line(const TrainedModel& m) {
  if (!m.guide) return "";
  return fmt::format("autoguidance: against {} (step {}), default w_guide = {:g}\n",
                     m.guide->path.string(), m.guide->state.value("step", int64_t{0}),
                     m.default_w_guide);
}

const bool kRegistered = register_command(/*order=*/40, [](CLI::App& app) {
  auto cmd = std::make_shared<ModelCommand>();
  auto* model = app.add_subcommand("model", "inspect the noise-predicting U-Net");
  model->require_subcommand(1);
  auto* summary = model->add_subcommand("summary", "print blocks, output shapes and parameters");
  add_model_options(*summary, cmd->config);
  summary->add_option("--checkpoint", cmd->checkpoint,
                      "describe the model stored in this checkpoint or run directory");
  summary->callback([cmd] {
    if (!cmd->checkpoint.empty()) {
      TrainedModel trained = load_trained_model(cmd->checkpoint, torch::kCPU);
      fmt::print("{}", model_summary(trained.model));
      if (trained.student_steps > 0) {
        fmt::print("distilled student: ddim, {} steps\n", trained.student_steps);
      }
      fmt::print("default guidance weight: w = {:g}\n", trained.default_w);
      fmt::print("{}", guide_line(trained));
      return;
    }
    UNet unet(cmd->config);
    fmt::print("{}", model_summary(unet));
  });
  auto* exporter = model->add_subcommand(
      "export", "write a sampling-only copy of a checkpoint (EMA weights and config)");
  exporter->add_option("--checkpoint", cmd->checkpoint, "checkpoint file or run directory")
      ->required();
  exporter->add_option("--out,-o", cmd->out, "output .safetensors file")->required();
  exporter
      ->add_option("--dtype", cmd->exported.dtype,
                   "weights stored as float32, float16 or bfloat16 (half the size; loaded back "
                   "as float32)")
      ->capture_default_str();
  auto* default_w = exporter->add_option(
      "--default-w", cmd->default_w,
      "the guidance weight the copy samples with when a request names none (choose it with "
      "`numeral eval sweep`; default: the source's own, else 0.25)");
  default_w->check(detail::rule_validator(finite()));
  exporter->add_option("--guide", cmd->guide,
                       "bundle this weaker model of the same data (checkpoint or run directory) "
                       "as the copy's autoguidance guide, so that the one file samples with it "
                       "(default: the source's own bundled guide, if any)");
  auto* default_w_guide = exporter->add_option(
      "--default-w-guide", cmd->default_w_guide,
      "the autoguidance weight the copy samples with when a request names none (needs a guide; "
      "default: the source's own with its own guide, else 0)");
  default_w_guide->check(detail::rule_validator(finite()));
  exporter->callback([cmd, default_w, default_w_guide] {
    if (default_w->count() > 0) cmd->exported.default_w = cmd->default_w;
    if (default_w_guide->count() > 0) cmd->exported.default_w_guide = cmd->default_w_guide;
    cmd->exported.guide = cmd->guide;
    const TrainedModel copy = export_for_sampling(cmd->checkpoint, cmd->out, cmd->exported);
    fmt::print("{}: EMA weights of {} (step {}) as {}, default w = {:g}, {:.2f} MB\n{}", cmd->out,
               copy.state.value("exported_from", std::string()),
               copy.state.value("step", int64_t{0}), cmd->exported.dtype, copy.default_w,
               std::filesystem::file_size(cmd->out) / 1e6, guide_line(copy));
  });
});

}  // namespace
}  // namespace numeral::cli
