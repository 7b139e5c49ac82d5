#include "numeral/eval/reference.h"

#include <fmt/format.h>

#include <algorithm>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {

void check_model_compatible(const TrainedClassifier& classifier, const UNetConfig& model,
                            const std::string& origin) {
  const auto& c = classifier.config;
  NUMERAL_CHECK(model.image_size == c.image_size && model.image_channels == c.image_channels,
                "{} makes {}x{}x{} images but classifier {} reads {}x{}x{}; train a classifier "
                "on data of this size",
                origin, model.image_size, model.image_size, model.image_channels,
                classifier.path.string(), c.image_size, c.image_size, c.image_channels);
  NUMERAL_CHECK(model.num_classes <= c.num_classes, "{} has {} classes but classifier {} knows {}",
                origin, model.num_classes, classifier.path.string(), c.num_classes);
}

bool check_run_split(const TrainedModel& model, const DataSplit& split) {
  const nlohmann::json* stored = nullptr;
  if (model.state.contains("val_fingerprint")) stored = &model.state.at("val_fingerprint");
  if (!stored) return false;
  uint64_t fingerprint = 0;
  try {
    fingerprint = stored->is_string() ? std::stoull(stored->get<std::string>(), nullptr, 16)
                                      : stored->get<uint64_t>();
  } catch (const std::exception&) {
    fail("{}: corrupt checkpoint state: val_fingerprint {}", model.path.string(), stored->dump());
  }
  NUMERAL_CHECK(fingerprint == split.val_fingerprint,
                "{} was trained with held-out fingerprint {} but data '{}' now gives {}: the "
                "held-out digits are not the ones the model never saw (was the data replaced?)",
                model.path.string(), fingerprint_hex(fingerprint), split.name,
                fingerprint_hex(split.val_fingerprint));
  return true;
}

RealReference make_real_reference(FeatureExtractor& judge, const DataSplit& split, uint64_t seed) {
  NUMERAL_CHECK(split.val.size() > 0, "data '{}' has no held-out images to compare with",
                split.name);
  RealReference r;
  r.data = split.name;
  r.split = split.split;
  r.val_fingerprint = split.val_fingerprint;
  r.class_names = split.class_names;
  r.parts = split.parts;
  r.val_x = to_model_range(split.val.images);
  r.val_y = split.val.labels.to(torch::kLong);
  r.train_x = to_model_range(split.train.images);
  r.train_y = split.train.labels.to(torch::kLong);
  const int64_t floor_size = std::min(split.val.size(), split.train.size());
  const auto perm = seeded_permutation(split.train.size(), seed + 1);
  const auto idx =
      torch::tensor(std::vector<int64_t>(perm.begin(), perm.begin() + floor_size), torch::kLong);
  r.floor_x = r.train_x.index_select(0, idx);
  r.floor_y = r.train_y.index_select(0, idx);
  r.judge = real_features(judge, r);
  NUMERAL_CHECK(r.judge.val.logits.defined(),
                "make_real_reference: the judge {} has no head (logits) to read digits with",
                r.judge.extractor);
  r.val_accuracy = accuracy(r.judge.val.logits, r.val_y).overall;
  r.diversity =
      diversity_report(r.val_x, r.judge.val.features, r.val_y, r.judge.val.logits.size(1));
  return r;
}

std::string item_noun(const std::vector<std::string>& class_names) {
  return class_names == default_class_names("mnist", 10) ? "digits" : "images";
}

std::string describe_reference(const RealReference& real) {
  return fmt::format(
      "{} held-out real {} of '{}' (fingerprint {}), which neither the classifier nor the "
      "diffusion model trained on",
      with_commas(real.val_y.size(0)), item_noun(real.class_names), real.data,
      fingerprint_hex(real.val_fingerprint));
}

std::string describe_judge(const RealReference& real) {
  return fmt::format("{} ({:.2f}% held-out accuracy, {} features)", real.judge.extractor,
                     100 * real.val_accuracy, real.judge.val.features.size(1));
}

}  // namespace numeral
