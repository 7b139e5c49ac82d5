#include "numeral/train/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"

namespace numeral {

void TrainConfig::validate() const {
  NUMERAL_CHECK(val_fraction > 0 && val_fraction < 1, "--val-fraction {}: expected 0 < f < 1",
                val_fraction);
  NUMERAL_CHECK(limit >= 0, "--limit {}: expected >= 0", limit);
  NUMERAL_CHECK(per_class >= 0, "--per-class {}: expected >= 0", per_class);
  NUMERAL_CHECK(val_samples >= 0, "--val-samples {}: expected >= 0", val_samples);
  NUMERAL_CHECK(epochs >= 1, "--epochs {}: expected at least 1", epochs);
  NUMERAL_CHECK(max_steps >= 0, "--max-steps {}: expected >= 0", max_steps);
  NUMERAL_CHECK(batch_size >= 1, "--batch-size {}: expected at least 1", batch_size);
  NUMERAL_CHECK(optimizer == "adam" || optimizer == "adamw",
                "--optimizer {}: expected adam or adamw", optimizer);
  NUMERAL_CHECK(lr > 0, "--lr {}: expected > 0", lr);
  NUMERAL_CHECK(lr_min >= 0 && lr_min <= lr, "--lr-min {}: expected 0 <= lr-min <= lr", lr_min);
  NUMERAL_CHECK(lr_schedule == "cosine" || lr_schedule == "linear" || lr_schedule == "constant",
                "--lr-schedule {}: expected cosine, linear or constant", lr_schedule);
  NUMERAL_CHECK(warmup_steps >= 0, "--warmup-steps {}: expected >= 0", warmup_steps);
  NUMERAL_CHECK(weight_decay >= 0, "--weight-decay {}: expected >= 0", weight_decay);
  NUMERAL_CHECK(grad_clip >= 0, "--grad-clip {}: expected >= 0", grad_clip);
  NUMERAL_CHECK(ema_decay >= 0 && ema_decay < 1, "--ema-decay {}: expected 0 <= d < 1", ema_decay);
  NUMERAL_CHECK(cond_drop_prob >= 0 && cond_drop_prob <= 1,
                "--cond-drop-prob {}: expected a probability in [0, 1]", cond_drop_prob);
  NUMERAL_CHECK(checkpoint_every >= 0, "--checkpoint-every {}: expected >= 0", checkpoint_every);
  NUMERAL_CHECK(preview_every >= 0, "--preview-every {}: expected >= 0", preview_every);
}

// clang-format off
#define NUMERAL_TRAIN_FIELDS(X)                                                      \
  X(data) X(val_fraction) X(split_seed) X(limit) X(per_class) X(val_samples)         \
  X(epochs) X(max_steps) X(batch_size) X(optimizer) X(lr) X(lr_min) X(lr_schedule)   \
  X(warmup_steps) X(weight_decay) X(grad_clip) X(ema_decay) X(cond_drop_prob)        \
  X(seed) X(checkpoint_every) X(preview_every) X(bf16)
// clang-format on

// to_json and from_json for a config struct from its field list: every field by its own name, a
// field missing from the JSON keeps its default.
#define NUMERAL_TO_JSON(field) j[#field] = c.field;
#define NUMERAL_FROM_JSON(field) c.field = j.value(#field, d.field);
#define NUMERAL_CONFIG_JSON(Type, FIELDS)            \
  void to_json(nlohmann::json& j, const Type& c) {   \
    j = nlohmann::json::object();                    \
    FIELDS(NUMERAL_TO_JSON)                          \
  }                                                  \
  void from_json(const nlohmann::json& j, Type& c) { \
    const Type d;                                    \
    FIELDS(NUMERAL_FROM_JSON)                        \
  }

NUMERAL_CONFIG_JSON(TrainConfig, NUMERAL_TRAIN_FIELDS)

void DistillConfig::validate(int64_t T) const {
  NUMERAL_CHECK(!teacher.empty(), "distill: --teacher is required");
  NUMERAL_CHECK(to_steps >= 1, "--to-steps {}: expected at least 1", to_steps);
  NUMERAL_CHECK(from_steps > to_steps && from_steps <= T,
                "--from-steps {}: expected more than --to-steps {} and at most T = {}", from_steps,
                to_steps, T);
  NUMERAL_CHECK(
      from_steps % to_steps == 0 && ((from_steps / to_steps) & (from_steps / to_steps - 1)) == 0,
      "--from-steps {} / --to-steps {}: expected a power of two (each round halves the "
      "steps)",
      from_steps, to_steps);
  NUMERAL_CHECK(round_steps >= 1, "--round-steps {}: expected at least 1", round_steps);
  NUMERAL_CHECK(std::isfinite(w_min) && std::isfinite(w_max) && 0 <= w_min && w_min <= w_max,
                "--w-min {} / --w-max {}: expected 0 <= w-min <= w-max", w_min, w_max);
}

int64_t DistillConfig::rounds() const {
  int64_t r = 0;
  for (int64_t n = from_steps; n > to_steps; n /= 2) ++r;
  return r;
}

int64_t DistillConfig::student_steps(int64_t round) const {
  return from_steps >> (round + 1);
}

#define NUMERAL_DISTILL_FIELDS(X) \
  X(teacher) X(from_steps) X(to_steps) X(round_steps) X(w_min) X(w_max)

NUMERAL_CONFIG_JSON(DistillConfig, NUMERAL_DISTILL_FIELDS)

void to_json(nlohmann::json& j, const RunConfig& c) {
  j = nlohmann::json{{"model", c.model}, {"diffusion", c.diffusion}, {"train", c.train}};
  if (c.distill) j["distill"] = *c.distill;
}

void from_json(const nlohmann::json& j, RunConfig& c) {
  c.model = j.value("model", UNetConfig{});
  c.diffusion = j.value("diffusion", DiffusionConfig{});
  c.train = j.value("train", TrainConfig{});
  c.distill.reset();
  if (j.contains("distill")) c.distill = j.at("distill").get<DistillConfig>();
}

}  // namespace numeral
