#pragma once
// Everything a training run is configured by, defined once (common/fields.h); stored in
// config.json and in every checkpoint, so a model can be rebuilt and sampled from its file alone.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "numeral/common/fields.h"
#include "numeral/diffusion/schedule.h"
#include "numeral/model/config.h"

namespace numeral {

enum class Optimizer { adam, adamw };
NUMERAL_ENUM_NAMES(Optimizer, {Optimizer::adam, "adam"}, {Optimizer::adamw, "adamw"});
enum class LrSchedule { cosine, linear, constant };
NUMERAL_ENUM_NAMES(LrSchedule, {LrSchedule::cosine, "cosine"}, {LrSchedule::linear, "linear"},
                   {LrSchedule::constant, "constant"});

// How `numeral train` optimises; fields in describe() below.
struct TrainConfig {
  std::string data = "mnist";
  double val_fraction = 0.2;
  uint64_t split_seed = 0;
  int64_t limit = 0;
  int64_t per_class = 0;
  int64_t val_samples = 1000;
  int64_t epochs = 10;
  int64_t max_steps = 0;
  int64_t batch_size = 64;
  Optimizer optimizer = Optimizer::adamw;
  double lr = 2e-3;
  double lr_min = 1e-5;
  LrSchedule lr_schedule = LrSchedule::cosine;
  int64_t warmup_steps = 300;
  double weight_decay = 0.0;
  double grad_clip = 1.0;
  double ema_decay = 0.999;
  double cond_drop_prob = 0.1;
  uint64_t seed = 0;
  int64_t checkpoint_every = 0;
  int64_t preview_every = 0;
  bool bf16 = false;
  std::string init_from;

  // Throws FieldError naming the field when a value is out of range.
  void validate() const;
};

template <class V>
void describe(TrainConfig& t, V& v) {
  v("data", t.data,
    "mnist, fashion-mnist, a dataset in the data directory (e.g. colored-mnist), a directory (IDX, "
    "CIFAR binary, class folders of images), or several joined by commas (one mixed model)");
  v("val_fraction", t.val_fraction, "held out when the data has no test split", probability_open());
  v("split_seed", t.split_seed, "seed of that split");
  v("limit", t.limit, "use only the first N training images (0 = all)", at_least(0));
  v("per_class", t.per_class, "then use only the first N training images of each class (0 = all)",
    at_least(0));
  v("val_samples", t.val_samples, "held-out images for the validation loss (0 = all)", at_least(0));
  v("epochs", t.epochs, "passes over the training images", at_least(1));
  v("max_steps", t.max_steps, "stop after N optimiser steps (0 = no limit)", at_least(0));
  v("batch_size", t.batch_size, "images per step", at_least(1));
  v("optimizer", t.optimizer, "adam or adamw");
  v("lr", t.lr, "peak learning rate", above(0));
  v("lr_min", t.lr_min, "final learning rate (at most lr)", at_least(0));
  v("lr_schedule", t.lr_schedule, "cosine, linear or constant after warm-up");
  v("warmup_steps", t.warmup_steps, "linear learning-rate warm-up steps", at_least(0));
  v("weight_decay", t.weight_decay, "AdamW decoupled weight decay", at_least(0));
  v("grad_clip", t.grad_clip, "clip the global gradient norm (0 = off)", at_least(0));
  v("ema_decay", t.ema_decay, "EMA decay of the sampling weights", unit_interval_open_top());
  v("cond_drop_prob", t.cond_drop_prob, "probability of masking a label (classifier-free guidance)",
    between(0, 1));
  v("seed", t.seed, "seeds initialisation, data order and noise");
  v("checkpoint_every", t.checkpoint_every, "also checkpoint every N steps (0 = each epoch)",
    at_least(0));
  v("preview_every", t.preview_every, "write a sample grid every N epochs (0 = off)", at_least(0));
  v("bf16", t.bf16, "bfloat16 autocast (CUDA only)");
  v("init_from", t.init_from,
    "start from a trained model (run directory or .safetensors): its weights, model and diffusion "
    "settings; its classes must come first in --data, and any further classes are added");
}

void to_json(nlohmann::json& j, const TrainConfig& c);
void from_json(const nlohmann::json& j, TrainConfig& c);

// How `numeral distill` makes a few-step student from a trained model: progressive distillation
// (Salimans & Ho 2022) with the guidance weight as a student input (Meng et al. 2023).
struct DistillConfig {
  std::string teacher;
  int64_t from_steps = 64;
  int64_t to_steps = 4;
  int64_t round_steps = 1000;
  double w_min = 0.0;
  double w_max = 2.0;
  double w_guide = 0;  // the teacher's autoguidance weight in round 1's targets

  // Throws numeral::Error naming the field when a value is out of range for a schedule of T steps.
  void validate(int64_t T) const;
  // The number of halvings from from_steps to to_steps.
  int64_t rounds() const;
  // The student's sampling steps in round r (0-based): from_steps / 2^(r + 1).
  int64_t student_steps(int64_t round) const;
};

template <class V>
void describe(DistillConfig& d, V& v) {
  v("teacher", d.teacher, "the trained model to distil (a checkpoint or run directory)");
  v("from_steps", d.from_steps,
    "the teacher's DDIM steps (trailing grid) that the first round halves", at_least(2));
  v("to_steps", d.to_steps, "the student's steps after the last round: from_steps / 2^rounds",
    at_least(1));
  v("round_steps", d.round_steps,
    "optimiser steps per halving round (learning rate and EMA restart each)", at_least(1));
  v("w_min", d.w_min, "smallest guidance weight the student learns (drawn uniformly)", at_least(0));
  v("w_max", d.w_max, "largest guidance weight the student learns", at_least(0));
  v("w_guide", d.w_guide,
    "the teacher's autoguidance weight in the first round's targets, against the guide its file "
    "bundles (`numeral model export --guide`), so that the student learns the autoguided teacher; "
    "0 = classifier-free guidance alone",
    finite());
}

void to_json(nlohmann::json& j, const DistillConfig& c);
void from_json(const nlohmann::json& j, DistillConfig& c);

// A training run's full configuration: the model, the diffusion process and the optimisation,
// and for a distilled student how it is distilled.
struct RunConfig {
  UNetConfig model;
  DiffusionConfig diffusion;
  TrainConfig train;
  std::optional<DistillConfig> distill;  // set for a student (checkpoint kind "student")
};

void to_json(nlohmann::json& j, const RunConfig& c);
void from_json(const nlohmann::json& j, RunConfig& c);

struct DataOptions;  // data/dataset.h
// The data and seeded split a run trains on (its --data, --val-fraction and --split-seed), at the
// model's image size and channels (0 in the model config: the data's own). Training, evaluation
// and serve load a run's images through this one mapping.
DataOptions data_options_of(const RunConfig& config);

// One line of a run's log.jsonl; a checkpoint's state keeps them all as "history".
struct EpochStats {
  int64_t epoch = 0;        // 1-based
  int64_t step = 0;         // optimiser steps so far
  double train_loss = 0;    // mean over the epoch's steps
  double val_loss = 0;      // EMA model on the fixed held-out batch (same noise every epoch)
  double lr = 0;            // learning rate at the epoch's end
  double images_per_s = 0;  // training throughput over the epoch
  double elapsed_s = 0;     // wall time since the run started (across resumes)
};

void to_json(nlohmann::json& j, const EpochStats& s);
void from_json(const nlohmann::json& j, EpochStats& s);

}  // namespace numeral
