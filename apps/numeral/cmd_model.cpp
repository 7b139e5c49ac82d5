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
};

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
  exporter->callback([cmd, default_w] {
    if (default_w->count() > 0) cmd->exported.default_w = cmd->default_w;
    const auto source = export_for_sampling(cmd->checkpoint, cmd->out, cmd->exported);
    fmt::print("{}: EMA weights of {} (step {}) as {}, default w = {:g}, {:.2f} MB\n", cmd->out,
               source.path.string(), source.state.value("step", int64_t{0}), cmd->exported.dtype,
               cmd->exported.default_w.value_or(source.default_w),
               std::filesystem::file_size(cmd->out) / 1e6);
  });
});

}  // namespace
}  // namespace numeral::cli
