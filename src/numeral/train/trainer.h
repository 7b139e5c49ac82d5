#pragma once
// The trainer: data, optimiser, EMA, logging, checkpoints. Nothing else.
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "numeral/data/dataset.h"
#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/inference/run_config.h"
#include "numeral/inference/trained_model.h"
#include "numeral/model/unet.h"
#include "numeral/train/distributed.h"
#include "numeral/train/ema.h"

namespace numeral {

class RunDirLock;
struct Checkpoint;

// What a training step minimises. The trainer owns the data, the optimiser, the EMA, the loop, the
// checkpoints and the log; an Objective turns a batch into a loss. The diffusion loss
// (DiffusionObjective) is the default; progressive distillation (train/distill.h) is another.
class Objective {
 public:
  virtual ~Objective() = default;
  // The kind of checkpoint this run writes and resumes from.
  virtual std::string checkpoint_kind() const { return kDiffusionKind; }
  // Sets a new run's initial weights, before the EMA copies them (default: the seeded init).
  virtual void initialise(UNet& /*model*/) {}
  // Called before optimiser step `step`; may change the model and its EMA (a new round).
  virtual void begin_step(int64_t /*step*/, UNet& /*model*/, UNet& /*ema_model*/) {}
  // The loss of `model` on a batch: x0 [B, C, H, W] in [-1, 1], labels [B] (some already
  // kNullLabel), t [B] in [0, T) and noise [B, C, H, W] drawn by the trainer. Anything else random
  // comes from `generator`; null means validation, which must be deterministic.
  virtual torch::Tensor loss(UNet& model, const torch::Tensor& x0, const torch::Tensor& labels,
                             const torch::Tensor& t, const torch::Tensor& noise,
                             at::Generator* generator) = 0;
  // Steps after which the learning rate's warm-up and decay and the EMA's warm-up start again
  // (0: one cycle over the whole run).
  virtual int64_t cycle_steps() const { return 0; }
  // Adds this objective's own state to a checkpoint, and reads it back on resume.
  virtual void save(Checkpoint& /*checkpoint*/) const {}
  virtual void restore(const Checkpoint& /*checkpoint*/, const std::string& /*origin*/) {}
};

// The diffusion model's own loss: GaussianDiffusion::training_loss (eps, v or EDM).
class DiffusionObjective : public Objective {
 public:
  explicit DiffusionObjective(std::shared_ptr<GaussianDiffusion> diffusion)
      : diffusion_(std::move(diffusion)) {}
  torch::Tensor loss(UNet& model, const torch::Tensor& x0, const torch::Tensor& labels,
                     const torch::Tensor& t, const torch::Tensor& noise,
                     at::Generator* generator) override;

 private:
  std::shared_ptr<GaussianDiffusion> diffusion_;
};

// How to run the trainer (not part of the stored config).
struct TrainerOptions {
  std::filesystem::path run_dir;  // config.json, log.jsonl, checkpoint.safetensors
  torch::Device device = torch::kCPU;
  bool resume = false;                            // continue from run_dir's checkpoint
  const std::atomic<bool>* stop = nullptr;        // set (e.g. by Ctrl-C) to checkpoint and stop
  std::function<void(const std::string&)> print;  // status lines; null = silent
  // Called after each epoch's checkpoint (e.g. preview grids).
  std::function<void(const EpochStats&)> on_epoch;
  // What the steps minimise; null = the diffusion loss (DiffusionObjective).
  std::shared_ptr<Objective> objective;
  // The group of a data-parallel run (train/distributed.h); null = this process alone. Each rank
  // takes train.batch_size images of every global batch of batch_size x world_size; only rank 0
  // writes the run directory.
  std::shared_ptr<DataParallel> parallel;
};

// What a run did.
struct TrainResult {
  int64_t steps = 0;
  bool interrupted = false;
  std::vector<EpochStats> history;
};

// Trains the U-Net on an Objective (the diffusion loss by default), keeps an EMA for sampling, logs
// each epoch, and checkpoints atomically so that a resumed run continues exactly as an
// uninterrupted one would.
class Trainer {
 public:
  Trainer(RunConfig config, TrainerOptions options);
  ~Trainer();
  TrainResult run();

  const RunConfig& config() const { return config_; }
  UNet& model() { return model_; }
  UNet& ema_model() { return ema_model_; }
  std::shared_ptr<GaussianDiffusion> diffusion() const { return diffusion_; }
  const DataSplit& data() const { return data_; }
  // The training images as held on the device: uint8 pixels [N, C, H, W].
  const torch::Tensor& train_images() const { return train_x_; }
  // The labels of the fixed validation batch: the first held-out images (of a mix, an even share
  // of each source's).
  const torch::Tensor& validation_labels() const { return val_y_; }
  // The learning rate at optimiser step `step` (warm-up, then the configured decay).
  double learning_rate(int64_t step) const;
  // Sets the flag that, once true, makes run() checkpoint and return at the next step.
  void set_stop_flag(const std::atomic<bool>* stop) { options_.stop = stop; }
  // Replaces the callback run after each epoch's checkpoint.
  void set_epoch_callback(std::function<void(const EpochStats&)> callback) {
    options_.on_epoch = std::move(callback);
  }
  // Writes checkpoint.safetensors in the run directory now.
  void save_checkpoint_now();

 private:
  void restore(const std::filesystem::path& path);
  // Whether this process writes the run directory (rank 0 of a group, or alone).
  bool is_main() const { return !options_.parallel || options_.parallel->is_main(); }
  // Sums the gradients over the group, with `extras` (e.g. the loss) in the same collective.
  void all_reduce_gradients(const torch::Tensor& extras);
  // A new run's weights from a trained model (--init-from): every weight, the class embeddings
  // widened for the classes the data adds (load_extending_classes).
  void init_from_model(const std::string& path);
  double validation_loss();
  void write_log();
  void print(const std::string& line) const;

  RunConfig config_;
  TrainerOptions options_;
  std::unique_ptr<RunDirLock> run_dir_lock_;
  DataSplit data_;
  std::shared_ptr<GaussianDiffusion> diffusion_;
  UNet model_{nullptr}, ema_model_{nullptr};
  std::unique_ptr<EMA> ema_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::shared_ptr<Objective> objective_;
  at::Generator generator_;  // t, noise and label masks
  // [N, C, H, W] uint8 pixels (a quarter of float storage; each batch is converted to the
  // model's range as it is drawn) and [N] int64 labels, on the device.
  torch::Tensor train_x_, train_y_;
  torch::Tensor val_x_, val_y_, val_t_, val_noise_;  // the fixed validation batch
  // A mixed dataset's training images by source; an epoch then draws each source as often as the
  // largest (the smaller ones repeat, reshuffled), so every source weighs the same.
  std::vector<torch::Tensor> part_indices_;
  int64_t epoch_length_ = 0;                       // images an epoch visits
  torch::Tensor epoch_order(int64_t epoch) const;  // [epoch_length_] int64 on the device
  int64_t step_ = 0;
  int64_t global_batch_ = 0;  // batch_size x the group's size
  int64_t steps_per_epoch_ = 0;
  int64_t planned_steps_ = 0;  // epochs * steps_per_epoch: the learning-rate schedule's length
  int64_t total_steps_ = 0;    // planned_steps_, cut short by max_steps
  double epoch_loss_sum_ = 0;
  int64_t epoch_loss_count_ = 0;
  double elapsed_before_ = 0;  // seconds spent in earlier sessions of this run
  std::chrono::steady_clock::time_point session_start_ = std::chrono::steady_clock::now();
  // Wall time of the whole run so far: earlier sessions plus this one.
  double elapsed_seconds() const;
  std::vector<EpochStats> history_;
  // content_fingerprint of the images trained on; with --init-from, combined with the source
  // model's: every image the weights have seen (eval augment's leak check reads it).
  uint64_t train_fingerprint_ = 0;
};

// Classifier-free guidance training: replaces each label by kNullLabel with probability p.
torch::Tensor drop_labels(const torch::Tensor& labels, double p, at::Generator& generator);  // [B]

// Fills what a run left to the data (0 or empty in `model`): image size and channels, the number
// of classes, and the widths (default_widths of the image size).
void resolve_from_data(UNetConfig& model, const DataSplit& data);

}  // namespace numeral
