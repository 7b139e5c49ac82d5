#pragma once
// Everything a training run is configured by, defined once; stored in config.json and in every
// checkpoint.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "numeral/diffusion/schedule.h"
#include "numeral/model/config.h"

namespace numeral {

// How `numeral train` optimises.
struct TrainConfig {
  std::string data = "mnist";          // mnist, fashion-mnist or a directory of IDX files
  double val_fraction = 0.2;           // held out when the data has no test split
  uint64_t split_seed = 0;             // seed of that split
  int64_t limit = 0;                   // use only the first N training images (0 = all)
  int64_t per_class = 0;               // then only the first N of each class (0 = all)
  int64_t val_samples = 1000;          // held-out images for the validation loss (0 = all)
  int64_t epochs = 10;                 // passes over the training images
  int64_t max_steps = 0;               // stop after this many optimiser steps (0 = no limit)
  int64_t batch_size = 64;             // images per step (small data: more steps per epoch)
  std::string optimizer = "adamw";     // adam | adamw
  double lr = 2e-3;                    // peak learning rate
  double lr_min = 1e-5;                // learning rate at the end of the decay
  std::string lr_schedule = "cosine";  // cosine | linear | constant (after warm-up)
  int64_t warmup_steps = 300;          // linear warm-up from 0 to lr
  double weight_decay = 0.0;           // AdamW decoupled weight decay
  double grad_clip = 1.0;              // clip the global gradient norm (0 = off)
  double ema_decay = 0.999;            // EMA decay, warmed up as min(decay, (1+n)/(10+n))
  double cond_drop_prob = 0.1;         // probability of masking a label (classifier-free guidance)
  uint64_t seed = 0;                   // seeds initialisation, data order and noise
  int64_t checkpoint_every = 0;        // also checkpoint every N steps (0 = each epoch and the end)
  int64_t preview_every = 0;           // write a sample grid every N epochs (0 = off)
  bool bf16 = false;                   // bfloat16 autocast on CUDA

  // Throws numeral::Error naming the field when a value is out of range.
  void validate() const;
};

void to_json(nlohmann::json& j, const TrainConfig& c);
void from_json(const nlohmann::json& j, TrainConfig& c);

// How `numeral distill` makes a few-step student from a trained model: progressive distillation
// (Salimans & Ho 2022) with the guidance weight as a student input (Meng et al. 2023).
struct DistillConfig {
  std::string teacher;         // the trained model's checkpoint (a file or a run directory)
  int64_t from_steps = 64;     // the teacher's DDIM steps (trailing grid) that round 1 halves
  int64_t to_steps = 4;        // the student's steps after the last round: from_steps / 2^rounds
  int64_t round_steps = 1000;  // optimiser steps per round (learning rate and EMA restart each)
  double w_min = 0.0;          // the guidance weights the student learns, drawn uniformly
  double w_max = 2.0;          //   from [w_min, w_max]

  // Throws numeral::Error naming the field when a value is out of range for a schedule of T steps.
  void validate(int64_t T) const;
  // The number of halvings from from_steps to to_steps.
  int64_t rounds() const;
  // The student's sampling steps in round r (0-based): from_steps / 2^(r + 1).
  int64_t student_steps(int64_t round) const;
};

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

}  // namespace numeral
