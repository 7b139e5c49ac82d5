#pragma once
// The real digits generated ones are judged against: the held-out digits of the split (which
// neither the classifier nor the diffusion model trained on), a floor set of as many real training
// digits, and the training digits (the CAS baseline); plus the checks that a model, a classifier
// and a split belong together.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "numeral/data/dataset.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/features.h"
#include "numeral/eval/metrics.h"
#include "numeral/inference/trained_model.h"
#include "numeral/model/config.h"

namespace numeral {

// Throws numeral::Error unless the diffusion model makes images the classifier can read (same
// size and channels) for the classes it knows.
void check_model_compatible(const TrainedClassifier& classifier, const UNetConfig& model,
                            const std::string& origin);

// Throws numeral::Error if a diffusion checkpoint records the held-out fingerprint of its data
// and it differs from `split`'s. Returns false when the checkpoint records none (older runs): the
// split is then only as trustworthy as the run's stored data options.
bool check_run_split(const TrainedModel& model, const DataSplit& split);

// The real digits, and how the judge (the classifier) sees them. The floor set is an equally
// sized seeded subset of the training digits: real, disjoint from the held-out ones. Its images
// are kept so that any other FeatureExtractor can compute its own real_features of the same sets.
struct RealReference {
  std::string data;   // DataSplit::name
  std::string split;  // DataSplit::split
  uint64_t val_fingerprint = 0;
  std::vector<std::string> class_names;
  std::vector<DataPart> parts;     // the sources of a mixed dataset (evaluated each on its own)
  torch::Tensor val_x, val_y;      // held-out: [N, C, H, W] float in [-1, 1], [N] int64
  torch::Tensor floor_x, floor_y;  // the floor set: [F, C, H, W], [F]
  torch::Tensor train_x, train_y;  // all training digits (the CAS baseline)
  RealFeatures judge;              // the judge's features of the held-out and floor sets
  double val_accuracy = 0;         // the judge's accuracy on the held-out digits
  DiversityReport diversity;       // the held-out digits' diversity, judge features and pixels

  int64_t floor_size() const { return floor_y.defined() ? floor_y.size(0) : 0; }
};

// Builds the reference from a split: held-out digits are the reference; seed picks the floor set.
// The judge must have a head (logits) for its held-out accuracy.
RealReference make_real_reference(FeatureExtractor& judge, const DataSplit& split,
                                  uint64_t seed = 0);

// One line for people: "2,000 held-out real digits of 'mnist' (fingerprint ...), which neither
// the classifier nor the diffusion model trained on".
std::string describe_reference(const RealReference& real);

// What the reports call the images: "digits" when the classes are the digits 0 to 9, else
// "images" (nothing says digit about Fashion-MNIST, CIFAR or a mix).
std::string item_noun(const std::vector<std::string>& class_names);

// One line for people about the judge: "classifier runs/c/checkpoint.safetensors (98.95%
// held-out accuracy, 128 features)".
std::string describe_judge(const RealReference& real);

}  // namespace numeral
