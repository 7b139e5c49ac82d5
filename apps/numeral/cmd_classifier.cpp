// `numeral classifier train`: trains the digit classifier that `numeral eval` judges samples with.
#include <fmt/core.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/lock.h"
#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/data/dataset.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/metrics.h"

namespace numeral::cli {
namespace {

struct ClassifierTrainCommand {
  DataOptions data;
  ClassifierConfig model;
  ClassifierTrainConfig train;
  RuntimeOptions runtime;
  int64_t limit = 0;  // use only the first N training images (0 = all)
  std::string out;    // "" = runs/classifier-<data>
  bool force = false;
};

void run(ClassifierTrainCommand& cmd) {
  const torch::Device device = select_device(cmd.runtime.device);
  const int threads = configure_threads(cmd.runtime.threads);
  cmd.model.validate();
  cmd.train.validate();
  NUMERAL_CHECK(cmd.limit >= 0, "--limit {}: expected at least 0", cmd.limit);
  if (cmd.out.empty()) {
    std::string name = std::filesystem::path(cmd.data.data).filename().string();
    cmd.out = "runs/classifier-" + (name.empty() ? std::string("data") : name);
  }
  const std::filesystem::path out(cmd.out);
  const RunDirLock out_lock(out);  // one writer at a time
  const auto checkpoint_path = out / "checkpoint.safetensors";
  NUMERAL_CHECK(cmd.force || !std::filesystem::exists(checkpoint_path),
                "{} already exists; pass --force to replace it or choose another --out",
                checkpoint_path.string());

  const DataSplit split = load_data(cmd.data);
  auto images = split.train.images, labels = split.train.labels;
  if (cmd.limit > 0 && cmd.limit < split.train.size()) {
    images = images.slice(0, 0, cmd.limit);
    labels = labels.slice(0, 0, cmd.limit);
  }
  NUMERAL_CHECK(split.val.size() > 0, "data '{}' has no held-out images to test the classifier on",
                split.name);
  ClassifierConfig model_config = cmd.model;
  model_config.image_size = images.size(2);
  model_config.image_channels = images.size(1);
  model_config.num_classes = split.num_classes;
  NUMERAL_CHECK(images.size(2) == images.size(3), "data '{}' has non-square {}x{} images",
                split.name, images.size(2), images.size(3));

  fmt::print("numeral classifier train  out {}  device {}  threads {}\n", out.string(),
             device.str(), threads);
  fmt::print("  model: {}\n  train: {}\n", nlohmann::json(model_config).dump(),
             nlohmann::json(cmd.train).dump());
  fmt::print("  data:  {} ({}); {} train, {} held out ({}; fingerprint {})\n", split.name,
             split.source, images.size(0), split.val.size(), split.split,
             fingerprint_hex(split.val_fingerprint));
  std::fflush(stdout);

  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next step, write nothing
  torch::manual_seed(cmd.train.seed);
  TrainedClassifier c;
  c.config = model_config;
  c.train = cmd.train;
  c.model = DigitClassifier(model_config);
  c.model->to(device);
  int64_t params = 0;
  for (const auto& p : c.model->parameters()) params += p.numel();
  fmt::print("  classifier has {:.3f} M parameters\n", params / 1e6);
  const auto val_x = to_model_range(split.val.images);
  c.history = train_classifier(
      c.model, cmd.train, to_model_range(images), labels, val_x, split.val.labels,
      [&](const ClassifierEpoch& e) {
        fmt::print("epoch {:>3}/{}  train loss {:.4f}  held-out accuracy {:.2f}%  lr {:.2e}  {}\n",
                   e.epoch, cmd.train.epochs, e.train_loss, 100 * e.val_accuracy, e.lr,
                   format_duration(e.elapsed_s));
        std::fflush(stdout);
      });
  const AccuracyReport acc = accuracy(classify(c.model, val_x).logits, split.val.labels);
  c.val_accuracy = acc.overall;
  c.data.data = cmd.data.data;
  c.data.val_fraction = cmd.data.val_fraction;
  c.data.split_seed = cmd.data.split_seed;
  c.data.val_fingerprint = split.val_fingerprint;
  c.data.train_images = images.size(0);
  c.data.val_images = split.val.size();
  c.data.source = split.source;
  save_classifier(checkpoint_path, c);

  fmt::print(
      "\nheld-out accuracy {:.2f}% ({} of {} real {} the classifier never trained on)\n",
      100 * acc.overall,
      static_cast<int64_t>(std::llround(acc.overall * static_cast<double>(split.val.size()))),
      split.val.size(), split.name == "mnist" ? "digits" : "images");
  std::string head = "  class    ", row = "  accuracy ";
  for (size_t k = 0; k < acc.per_class.size(); ++k) {
    const std::string name =
        k < split.class_names.size() ? split.class_names[k] : std::to_string(k);
    head += fmt::format(" {:>7.7}", name);  // long names cut to 7 characters, one space apart
    row += fmt::format(" {:>6.1f}%", 100 * acc.per_class[k]);
  }
  fmt::print("{}\n{}\n", head, row);
  fmt::print("checkpoint {}\n", checkpoint_path.string());
}

const bool kRegistered = register_command(/*order=*/70, [](CLI::App& app) {
  auto cmd = std::make_shared<ClassifierTrainCommand>();
  auto* group = app.add_subcommand(
      "classifier", "the classifier (digits or any labelled images) that `numeral eval` uses");
  group->require_subcommand(1);
  auto* sub = group->add_subcommand(
      "train", "train a small CNN on the real training images and test it on the held-out ones");
  const char* data_group = "Data";
  sub->add_option("--data", cmd->data.data,
                  "mnist, fashion-mnist, a dataset in the data directory, a directory, or several "
                  "joined by commas")
      ->capture_default_str()
      ->group(data_group);
  sub->add_option("--val-fraction", cmd->data.val_fraction,
                  "held out when the data has no test split")
      ->capture_default_str()
      ->group(data_group);
  sub->add_option("--split-seed", cmd->data.split_seed, "seed of that split")
      ->capture_default_str()
      ->group(data_group);
  sub->add_option("--limit", cmd->limit, "use only the first N training images (0 = all)")
      ->capture_default_str()
      ->group(data_group);
  sub->add_option("--image-size", cmd->data.image_size,
                  "fit the images to this side, as the diffusion model's data (0 = the data's own)")
      ->capture_default_str()
      ->check(at_least(0))
      ->group(data_group);
  sub->add_option("--image-channels", cmd->data.channels,
                  "1 (grey) or 3 (RGB), as the diffusion model's data (0 = the data's own)")
      ->capture_default_str()
      ->check(between(0, 3))
      ->group(data_group);
  const char* model_group = "Classifier";
  sub->add_option("--width", cmd->model.width, "channels of the first convolutions (then 2x)")
      ->capture_default_str()
      ->group(model_group);
  sub->add_option("--feature-dim", cmd->model.feature_dim,
                  "width of the penultimate layer (the FID features)")
      ->capture_default_str()
      ->group(model_group);
  sub->add_option("--dropout", cmd->model.dropout, "dropout before the two linear layers")
      ->capture_default_str()
      ->group(model_group);
  const char* train_group = "Training";
  sub->add_option("--epochs", cmd->train.epochs, "passes over the training images")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--batch-size", cmd->train.batch_size, "images per step")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--lr", cmd->train.lr, "peak learning rate (one-cycle: warm-up, cosine decay)")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--warmup-fraction", cmd->train.warmup_fraction,
                  "share of the steps spent warming up")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--weight-decay", cmd->train.weight_decay, "AdamW weight decay")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--label-smoothing", cmd->train.label_smoothing, "cross-entropy label smoothing")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--shift", cmd->train.max_shift, "random shifts of up to +-N pixels")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--seed", cmd->train.seed, "seeds initialisation, order and augmentation")
      ->capture_default_str()
      ->group(train_group);
  sub->add_option("--out", cmd->out,
                  "directory for checkpoint.safetensors (default runs/classifier-<data>)");
  sub->add_flag("--force", cmd->force, "replace an existing classifier checkpoint in --out");
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd] { run(*cmd); });
});

}  // namespace
}  // namespace numeral::cli
