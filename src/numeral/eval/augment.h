#pragma once
// The augmentation experiment (`numeral eval augment`): are generated digits worth anything as
// training data for a digit classifier? Every classifier gets the same number of optimiser steps
// and is tested on the held-out real digits; several seeds give the spread.
//  - Full data: the real training digits, the same plus M generated, and generated alone.
//  - Low data: N real digits per class, alone, with the classic augmentations (rotations,
//    elastic distortion), with digits from a generator trained on those same N per class, and
//    with both.
// A generator counts only if it trained on exactly the real digits its arm gets (its content
// fingerprint), so no other real digit leaks in through it.
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "numeral/data/dataset.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/report.h"
#include "numeral/eval/samples.h"
#include "numeral/inference/generate.h"
#include "numeral/io/image.h"
#include "numeral/train/trainer.h"

namespace numeral {

// What the experiment runs.
struct AugmentPlan {
  std::vector<int64_t> generated = {8000, 40000};  // full data: generated digits added (M)
  std::vector<std::pair<int64_t, std::filesystem::path>> low;  // N per class -> its generator
  int64_t low_generated = 5000;  // generated digits added in each low-data arm
  int64_t seeds = 3;             // classifiers per arm (seeds 0, 1, ...)
  int64_t steps = 1000;          // optimiser steps of every classifier (batch 128)
  double rotation = 15;          // classic augmentation: rotations up to +-15 degrees
  double elastic_alpha = 34;     // classic augmentation: elastic distortion (Simard et al.)
  double elastic_sigma = 4;
  // How generated digits are made; its w_guide is the full-data generator's (a low-data one
  // samples with its own file's default_w_guide).
  GenerateOptions generate;
  std::filesystem::path cache;         // generated digits are kept here as IDX files and reused
  torch::Device device = torch::kCPU;  // where generators sample and classifiers train

  // Throws numeral::Error naming the field when a value is out of range.
  void validate() const;
};

// One way of training the classifier.
struct AugmentArm {
  std::string name;  // e.g. "real + 8,000 generated"
  int64_t real_images = 0, generated_images = 0;
  bool classic = false;            // rotations and elastic distortion on (shifts always are)
  std::vector<double> accuracies;  // held-out accuracy, one per seed
  double mean() const;
  double spread() const;  // sample standard deviation over the seeds (0 for one seed)
};

struct AugmentExperiment {
  std::string title;
  int64_t per_class = 0;  // 0 = the whole training split
  std::string generator;  // the checkpoint that made the generated digits
  std::vector<AugmentArm> arms;
};

// Throws numeral::Error unless `generator` records that it trained on exactly `real` (its
// train_fingerprint) and held out the same digits as `split` (its val_fingerprint); so must its
// autoguidance guide, if it has one.
void check_generator_data(const TrainedModel& generator, const Dataset& real,
                          const DataSplit& split, const std::string& what);

// `n` digits from `generator` with balanced labels, read from `prefix`'s IDX files when a
// matching export of the same generator and options is there (its PREFIX.json says so), else
// generated and written there.
SampleSet cached_samples(const TrainedModel& generator, int64_t n, const GenerateOptions& options,
                         const std::filesystem::path& prefix,
                         const std::function<void(const std::string&)>& print = {});

// Trains `seeds` classifiers on images x [N, C, H, W] in [-1, 1] with labels y and returns each
// one's accuracy on the held-out split's images.
std::vector<double> held_out_accuracies(const torch::Tensor& x, const torch::Tensor& y,
                                        const ClassifierTrainConfig& train, int64_t seeds,
                                        const DataSplit& split);

// Runs the plan against the split: the full-data experiment with `full_generator` (trained on the
// whole training split) unless it is null, then one low-data experiment per entry of plan.low.
std::vector<AugmentExperiment> run_augment(const AugmentPlan& plan, const DataSplit& split,
                                           const TrainedModel* full_generator,
                                           const std::function<void(const std::string&)>& print);

// The tables (one per experiment: mean, spread, each seed, gain over real alone) and the plot.
Report augment_report(const std::vector<AugmentExperiment>& experiments, const AugmentPlan& plan,
                      std::vector<std::pair<std::string, std::string>> facts);
Image augment_plot(const std::vector<AugmentExperiment>& experiments);

}  // namespace numeral
