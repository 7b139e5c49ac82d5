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
};

// Keeps what sampling needs (the EMA weights, the config, the training history) and drops the
// raw weights, optimiser and RNG state, so a shipped model is about a quarter of a checkpoint.
void export_for_sampling(const std::string& from, const std::string& to) {
  const auto source = resolve_checkpoint_path(from);
  Checkpoint full = load_checkpoint(source, "diffusion");
  Checkpoint slim;
  slim.kind = full.kind;
  slim.config = full.config;
  slim.state = {{"step", full.state.value("step", 0)},
                {"history", full.state.value("history", nlohmann::json::array())},
                {"exported_from", source.string()}};
  for (const char* key : {"val_fingerprint", "train_fingerprint"}) {  // what it trained on
    if (full.state.contains(key)) slim.state[key] = full.state[key];
  }
  for (auto& [name, tensor] : full.tensors) {
    if (name.rfind("ema.", 0) == 0 || name.rfind("schedule.", 0) == 0) {
      slim.tensors.emplace(name, tensor);  // the weights, and a learned noise schedule
    }
  }
  NUMERAL_CHECK(!slim.tensors.empty(), "{}: has no EMA weights to export", source.string());
  save_checkpoint(to, slim);
  load_trained_model(to, torch::kCPU);  // the exported file must load for sampling
  fmt::print("{}: EMA weights of {} (step {}), {:.2f} MB\n", to, source.string(),
             slim.state["step"].get<int64_t>(), std::filesystem::file_size(to) / 1e6);
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
  exporter->callback([cmd] { export_for_sampling(cmd->checkpoint, cmd->out); });
});

}  // namespace
}  // namespace numeral::cli
