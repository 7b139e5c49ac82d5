#pragma once
// Classification accuracy score (Ravuri & Vinyals 2019): a fresh classifier trained only on
// generated digits and tested on real held-out ones, beside one trained on as many real digits.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "numeral/eval/classifier.h"
#include "numeral/eval/reference.h"

namespace numeral {

// How the CAS classifiers are trained.
struct CasOptions {
  int64_t epochs = 0;  // 0 = the judge classifier's recipe
  uint64_t seed = 0;   // seeds both classifiers and the real baseline subset
  std::function<void(const std::string&)> print;  // progress lines; null = silent
};

// The two accuracies and what they took.
struct CasReport {
  double synthetic = 0;  // accuracy on real held-out digits of the one trained on samples
  double real = 0;       // same for the one trained on real training digits
  int64_t train_images = 0;
  int64_t epochs = 0;
  double seconds = 0;
};

// Trains a classifier of the judge's architecture and recipe on images [N, C, H, W] in [-1, 1]
// with labels [N], and one on N real training digits (a seeded subset), on the judge's device;
// tests both on the reference's held-out digits.
CasReport classification_accuracy_score(const TrainedClassifier& judge, const torch::Tensor& images,
                                        const torch::Tensor& labels, const RealReference& real,
                                        const CasOptions& options);

}  // namespace numeral
