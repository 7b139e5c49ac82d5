#include "numeral/inference/run_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"
#include "numeral/data/dataset.h"

namespace numeral {

void TrainConfig::validate() const {
  check_fields(*this);
  NUMERAL_FIELD_CHECK(lr_min <= lr, "lr_min", "lr_min {}: expected at most lr = {}", lr_min, lr);
}

void to_json(nlohmann::json& j, const TrainConfig& c) {
  j = fields_to_json(c);
}

void from_json(const nlohmann::json& j, TrainConfig& c) {
  fields_from_json(j, c, {"train config"});
}

void DistillConfig::validate(int64_t T) const {
  check_fields(*this);
  NUMERAL_FIELD_CHECK(!teacher.empty(), "teacher", "teacher: required (a trained model)");
  NUMERAL_FIELD_CHECK(from_steps > to_steps && from_steps <= T, "from_steps",
                      "from_steps {}: expected more than to_steps = {} and at most T = {}",
                      from_steps, to_steps, T);
  NUMERAL_FIELD_CHECK(
      from_steps % to_steps == 0 && ((from_steps / to_steps) & (from_steps / to_steps - 1)) == 0,
      "from_steps",
      "from_steps {} / to_steps {}: expected a power of two (each round halves the "
      "steps)",
      from_steps, to_steps);
  NUMERAL_FIELD_CHECK(w_min <= w_max, "w_max", "w_max {}: expected at least w_min = {}", w_max,
                      w_min);
}

int64_t DistillConfig::rounds() const {
  int64_t r = 0;
  for (int64_t n = from_steps; n > to_steps; n /= 2) ++r;
  return r;
}

int64_t DistillConfig::student_steps(int64_t round) const {
  return from_steps >> (round + 1);
}

void to_json(nlohmann::json& j, const DistillConfig& c) {
  j = fields_to_json(c);
}

void from_json(const nlohmann::json& j, DistillConfig& c) {
  fields_from_json(j, c, {"distill config"});
}

void to_json(nlohmann::json& j, const RunConfig& c) {
  j = nlohmann::json{{"model", c.model}, {"diffusion", c.diffusion}, {"train", c.train}};
  if (c.distill) j["distill"] = *c.distill;
}

void from_json(const nlohmann::json& j, RunConfig& c) {
  NUMERAL_CHECK(j.is_object(), "run config: expected a JSON object, got {}", j.type_name());
  for (const char* section : {"model", "diffusion", "train"}) {
    NUMERAL_CHECK(j.contains(section),
                  "run config: no \"{}\" section (a config is never filled with defaults)",
                  section);
  }
  for (const auto& [key, value] : j.items()) {
    NUMERAL_CHECK(key == "model" || key == "diffusion" || key == "train" || key == "distill",
                  "run config: unknown section \"{}\"", key);
  }
  c = RunConfig{};
  from_json(j.at("model"), c.model);
  from_json(j.at("diffusion"), c.diffusion);
  from_json(j.at("train"), c.train);
  if (j.contains("distill")) {
    c.distill.emplace();
    from_json(j.at("distill"), *c.distill);
  }
}

void to_json(nlohmann::json& j, const EpochStats& s) {
  j = nlohmann::json{{"epoch", s.epoch},        {"step", s.step}, {"train_loss", s.train_loss},
                     {"val_loss", s.val_loss},  {"lr", s.lr},     {"images_per_s", s.images_per_s},
                     {"elapsed_s", s.elapsed_s}};
}

void from_json(const nlohmann::json& j, EpochStats& s) {
  s.epoch = j.at("epoch");
  s.step = j.at("step");
  s.train_loss = j.at("train_loss");
  s.val_loss = j.at("val_loss");
  s.lr = j.at("lr");
  s.images_per_s = j.at("images_per_s");
  s.elapsed_s = j.at("elapsed_s");
}

DataOptions data_options_of(const RunConfig& config) {
  DataOptions data;
  data.data = config.train.data;
  data.val_fraction = config.train.val_fraction;
  data.split_seed = config.train.split_seed;
  data.image_size = config.model.image_size;
  data.channels = config.model.image_channels;
  return data;
}

}  // namespace numeral
