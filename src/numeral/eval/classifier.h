#pragma once
// The judge of generated digits: a small CNN trained on real training digits. Its logits give
// conditional accuracy, its penultimate layer the features for the classifier-FID and diversity.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "numeral/data/dataset.h"

namespace numeral {

// The classifier's shape; stored in its checkpoint so it can be rebuilt from the file alone.
struct ClassifierConfig {
  int64_t image_size = 28;     // square images, at least 8
  int64_t image_channels = 1;  // 1 (grey) or 3 (RGB)
  int64_t num_classes = 10;    // labels 0..num_classes-1
  int64_t width = 16;          // channels of the first two convolutions; the last two have 2x
  int64_t feature_dim = 128;   // width of the penultimate layer: the features FID uses
  double dropout = 0.25;       // before the feature layer and before the output layer

  // Throws numeral::Error naming the field when a value is out of range.
  void validate() const;
};

void to_json(nlohmann::json& j, const ClassifierConfig& c);
void from_json(const nlohmann::json& j, ClassifierConfig& c);

// conv-conv-pool-conv-conv-pool (3x3, BatchNorm, ReLU) -> linear(feature_dim) -> linear(K).
class DigitClassifierImpl : public torch::nn::Module {
 public:
  explicit DigitClassifierImpl(const ClassifierConfig& config);

  // x [B, C, H, W] float in the model range [-1, 1] -> penultimate features [B, feature_dim].
  torch::Tensor features(const torch::Tensor& x);
  // features [B, feature_dim] -> logits [B, K].
  torch::Tensor head(const torch::Tensor& features);
  // x [B, C, H, W] -> logits [B, K].
  torch::Tensor forward(const torch::Tensor& x) { return head(features(x)); }

  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  torch::nn::Sequential convs_{nullptr};
  torch::nn::Linear fc_features_{nullptr}, fc_out_{nullptr};
  torch::nn::BatchNorm1d norm_features_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(DigitClassifier);

// How a classifier is trained: AdamW with a one-cycle learning rate (linear warm-up, cosine
// decay) and random shifts of up to max_shift pixels; optionally also the other classic
// augmentations, small rotations and elastic distortion (Simard et al. 2003).
struct ClassifierTrainConfig {
  int64_t epochs = 8;            // passes over the training images
  int64_t steps = 0;             // optimiser steps instead (a budget fixed across data sizes)
  int64_t batch_size = 128;      // images per step
  double lr = 3e-3;              // peak learning rate
  double warmup_fraction = 0.2;  // share of the steps spent warming up from lr / 25
  double weight_decay = 5e-4;    // AdamW decoupled weight decay
  double label_smoothing = 0.1;  // cross-entropy label smoothing
  int64_t max_shift = 2;         // random translation of each image by up to +-max_shift px
  double max_rotation = 0;       // random rotation by up to +-max_rotation degrees (0 = off)
  double elastic_alpha = 0;      // elastic distortion: displacement scale in pixels (0 = off)
  double elastic_sigma = 4;      // elastic distortion: smoothing of the displacement, in pixels
  uint64_t seed = 0;             // seeds initialisation, data order, augmentation and dropout

  // The optimiser steps training takes for n images: `steps`, or epochs over n.
  int64_t total_steps(int64_t n) const;

  // Throws numeral::Error naming the field when a value is out of range.
  void validate() const;
};

void to_json(nlohmann::json& j, const ClassifierTrainConfig& c);
void from_json(const nlohmann::json& j, ClassifierTrainConfig& c);

// One line of a classifier's training history.
struct ClassifierEpoch {
  int64_t epoch = 0;                                               // 1-based
  double train_loss = 0;                                           // mean over the epoch's steps
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();  // on held-out images, if any
  double lr = 0;         // learning rate at the epoch's end
  double elapsed_s = 0;  // since training started
};

void to_json(nlohmann::json& j, const ClassifierEpoch& e);
void from_json(const nlohmann::json& j, ClassifierEpoch& e);

// The learning rate at optimiser step `step` of `total`: linear warm-up from lr / 25 over
// warmup_fraction of the steps, then cosine decay to lr / 1000.
double classifier_learning_rate(const ClassifierTrainConfig& config, int64_t step, int64_t total);

// Translates each image by its own random offset in [-max_shift, max_shift]^2, filling with -1
// (black): pad, then a per-image crop. x [B, C, H, W] float -> same shape.
torch::Tensor random_shift(const torch::Tensor& x, int64_t max_shift, at::Generator& generator);

// Rotates each image about its centre by angles_deg[i] (positive: clockwise as displayed, rows
// running down) and moves each pixel by a displacement
// field ([B, 2, H, W], in pixels: x then y), sampling bilinearly and filling with -1 (black).
// angles 0 and a zero field give back x. x [B, C, H, W] float -> same shape.
torch::Tensor warp_images(const torch::Tensor& x, const torch::Tensor& angles_deg,
                          const torch::Tensor& displacement);

// Random rotations (uniform in +-max_rotation degrees) and elastic distortion (Simard et al. 2003:
// uniform [-1, 1] displacements smoothed by a Gaussian of elastic_sigma px, times elastic_alpha),
// each image its own; x itself when both are off.
torch::Tensor random_warp(const torch::Tensor& x, double max_rotation, double elastic_alpha,
                          double elastic_sigma, at::Generator& generator);

// Trains `model` in place on images [N, C, H, W] float in [-1, 1] with labels [N] int64, on the
// model's device; evaluates on val_x/val_y after every epoch when they are defined. Calls
// `on_epoch` after each epoch. Throws numeral::Error if the loss becomes non-finite.
std::vector<ClassifierEpoch> train_classifier(
    DigitClassifier& model, const ClassifierTrainConfig& config, const torch::Tensor& train_x,
    const torch::Tensor& train_y, const torch::Tensor& val_x = {}, const torch::Tensor& val_y = {},
    const std::function<void(const ClassifierEpoch&)>& on_epoch = {});

// What a classifier makes of a set of images.
struct ClassifierOutputs {
  torch::Tensor logits;    // [N, K] float on the CPU
  torch::Tensor features;  // [N, feature_dim] float on the CPU
};

// Runs the classifier in eval mode over images [N, C, H, W] float in [-1, 1] (any device) in
// batches; checks the image shape against the classifier's config.
ClassifierOutputs classify(DigitClassifier& model, const torch::Tensor& images,
                           int64_t batch_size = 500);

// Throws numeral::Error unless images [N, C, H, W] have the classifier's channels and size;
// `what` names the images ("the IDX images x.idx", "the diffusion model's samples").
void check_classifier_input(const ClassifierConfig& config, const torch::Tensor& images,
                            const std::string& what);

// The data a classifier was trained on: enough to reload the same split and check it.
struct ClassifierData {
  std::string data = "mnist";    // DataOptions::data
  double val_fraction = 0.2;     // DataOptions::val_fraction
  uint64_t split_seed = 0;       // DataOptions::split_seed
  uint64_t val_fingerprint = 0;  // DataSplit::val_fingerprint of that split
  int64_t train_images = 0;      // images it was trained on
  int64_t val_images = 0;        // held-out images it was tested on
  std::string source;            // DataSplit::source
};

void to_json(nlohmann::json& j, const ClassifierData& d);
void from_json(const nlohmann::json& j, ClassifierData& d);

// A classifier with everything its checkpoint stores.
struct TrainedClassifier {
  ClassifierConfig config;
  ClassifierTrainConfig train;
  ClassifierData data;
  DigitClassifier model{nullptr};                                  // eval mode
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();  // held-out, last epoch
  std::vector<ClassifierEpoch> history;
  std::filesystem::path path;  // where it was loaded from
};

// Writes a checkpoint of kind "classifier": config {"model", "train", "data"}, state
// {"val_accuracy", "history"}, tensors "model.*". Atomic.
void save_classifier(const std::filesystem::path& path, const TrainedClassifier& classifier);

// Loads a classifier checkpoint (a file or a directory holding checkpoint.safetensors) onto
// `device`; a checkpoint of another kind, a missing file or a corrupt config is a numeral::Error.
TrainedClassifier load_classifier(const std::filesystem::path& path,
                                  torch::Device device = torch::kCPU);

// Throws numeral::Error unless `split` is the split the classifier was trained against (same
// held-out fingerprint), so the held-out digits are ones it never saw.
void check_classifier_split(const TrainedClassifier& classifier, const DataSplit& split);

// DataOptions that reload the classifier's data split at its image size and channels (a source
// stored at another size is fitted to it, as it was for training: --image-size 64).
DataOptions classifier_data_options(const TrainedClassifier& classifier);

// Formats a split fingerprint as 16 hex digits.
std::string fingerprint_hex(uint64_t fingerprint);

}  // namespace numeral
