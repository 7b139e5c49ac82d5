// `numeral model summary`: the U-Net's blocks, output shapes and parameter count, for a config
// given by flags or read from a checkpoint.
#include <fmt/core.h>

#include "numeral/cli.h"
#include "numeral/model/unet.h"
#include "numeral/train/trainer.h"
#include "options.h"

namespace numeral::cli {
namespace {

struct ModelCommand {
  UNetConfig config;
  std::string checkpoint;
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
      return;
    }
    UNet unet(cmd->config);
    fmt::print("{}", model_summary(unet));
  });
});

}  // namespace
}  // namespace numeral::cli
