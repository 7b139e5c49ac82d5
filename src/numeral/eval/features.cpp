#include "numeral/eval/features.h"

#include <fmt/format.h>

#include <utility>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/eval/reference.h"

namespace numeral {

ClassifierExtractor::ClassifierExtractor(const TrainedClassifier& classifier)
    : ClassifierExtractor(classifier.model, "classifier " + classifier.path.string()) {}

ClassifierExtractor::ClassifierExtractor(DigitClassifier model, std::string name)
    : model_(std::move(model)), name_(std::move(name)) {
  NUMERAL_CHECK(model_, "ClassifierExtractor {}: no classifier", name_);
}

std::string ClassifierExtractor::feature_space() const {
  return fmt::format("the classifier's penultimate layer ({} dimensions)", feature_dim());
}

ExtractedFeatures ClassifierExtractor::extract(const torch::Tensor& images) {
  const ClassifierOutputs out = classify(model_, images);
  return {out.features, out.logits};
}

RealFeatures real_features(FeatureExtractor& extractor, const torch::Tensor& val_images,
                           const torch::Tensor& floor_images) {
  RealFeatures r;
  r.extractor = extractor.name();
  r.feature_space = extractor.feature_space();
  r.val = extractor.extract(val_images);
  r.floor = extractor.extract(floor_images);
  r.val_stats = feature_stats(r.val.features, "the held-out real digits");
  r.fid_floor =
      frechet_distance(r.val_stats, feature_stats(r.floor.features, "the real floor set"));
  return r;
}

RealFeatures real_features(FeatureExtractor& extractor, const RealReference& real) {
  return real_features(extractor, real.val_x, real.floor_x);
}

FidResult fid_against(const ExtractedFeatures& samples, const RealFeatures& real) {
  NUMERAL_CHECK(samples.features.dim() == 2 && real.val.features.dim() == 2 &&
                    samples.features.size(1) == real.val.features.size(1),
                "fid_against: the samples' features are {} but the real ones ({}) are {}",
                samples.features.sizes(), real.feature_space, real.val.features.sizes());
  FidResult fid;
  fid.value = frechet_distance(feature_stats(samples.features, "the samples"), real.val_stats);
  fid.floor = real.fid_floor;
  fid.samples = samples.features.size(0);
  fid.real = real.val.features.size(0);
  fid.floor_size = real.floor.features.size(0);
  fid.feature_space = real.feature_space;
  return fid;
}

}  // namespace numeral
