#pragma once
// Feature extractors and the one FID every extractor shares: an extractor turns images into
// features (and, with a head, logits); the Fréchet distance between the features of samples and
// of held-out real images is that extractor's FID, reported beside its real-vs-real floor.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "numeral/eval/classifier.h"
#include "numeral/eval/metrics.h"

namespace numeral {

struct RealReference;  // eval/reference.h

// What an extractor makes of images: features [N, D] (float, CPU) and, when it has a head,
// logits [N, K] (undefined tensor otherwise).
struct ExtractedFeatures {
  torch::Tensor features;  // [N, D]
  torch::Tensor logits;    // [N, K] or undefined
};

// Anything that maps images to a feature space an FID can be computed in: the digit classifier,
// a CLIP image encoder.
class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // Who extracts, for reports: "classifier runs/classifier-mnist/checkpoint.safetensors".
  virtual std::string name() const = 0;
  // The feature space in one phrase: "the classifier's penultimate layer (128 dimensions)".
  virtual std::string feature_space() const = 0;
  // D, the width of the features.
  virtual int64_t feature_dim() const = 0;
  // images [N, C, H, W] float in [-1, 1] on any device, batched inside.
  virtual ExtractedFeatures extract(const torch::Tensor& images) = 0;
};

// The digit classifier as an extractor: its penultimate layer and its logits (classify()).
class ClassifierExtractor final : public FeatureExtractor {
 public:
  // Shares the classifier's module (no copy); named after the path it was loaded from.
  explicit ClassifierExtractor(const TrainedClassifier& classifier);
  // Shares `model`; `name` says which classifier it is.
  ClassifierExtractor(DigitClassifier model, std::string name);

  std::string name() const override { return name_; }
  std::string feature_space() const override;
  int64_t feature_dim() const override { return model_->config().feature_dim; }
  ExtractedFeatures extract(const torch::Tensor& images) override;

 private:
  DigitClassifier model_;
  std::string name_;
};

// The real side of an FID in one extractor's feature space: the held-out images' features (and
// their statistics, computed once), the floor set's, and the FID between the two.
struct RealFeatures {
  std::string extractor;      // FeatureExtractor::name()
  std::string feature_space;  // FeatureExtractor::feature_space()
  ExtractedFeatures val;      // the held-out images
  ExtractedFeatures floor;    // the floor set: as many real training images, disjoint from them
  FeatureStats val_stats;     // mean and covariance of val.features
  double fid_floor = 0;       // FID(held-out, floor set): what real images score
};

// An FID and what it should be read against.
struct FidResult {
  double value = 0;           // FID(samples, held-out images)
  double floor = 0;           // FID(held-out images, floor set)
  int64_t samples = 0;        // images on the samples' side
  int64_t real = 0;           // held-out images
  int64_t floor_size = 0;     // floor-set images
  std::string feature_space;  // where the distance is measured
};

// `extractor`'s features of the reference's held-out images and floor set, and the floor FID.
RealFeatures real_features(FeatureExtractor& extractor, const RealReference& real);

// The same from the two image sets themselves ([N, C, H, W] in [-1, 1]).
RealFeatures real_features(FeatureExtractor& extractor, const torch::Tensor& val_images,
                           const torch::Tensor& floor_images);

// The FID of samples' features against the held-out real features (Heusel et al. 2017, through
// frechet_distance), with the floor beside it. Throws numeral::Error when the feature widths
// differ or there are fewer samples than feature dimensions.
FidResult fid_against(const ExtractedFeatures& samples, const RealFeatures& real);

}  // namespace numeral
