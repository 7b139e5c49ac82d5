#include "numeral/eval/classifier.h"

#include <chrono>
#include <cmath>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/progress.h"
#include "numeral/common/signals.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/eval/metrics.h"
#include "numeral/io/checkpoint.h"

namespace numeral {

namespace F = torch::nn::functional;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// JSON stores NaN as null; read it back as NaN.
double number_or_nan(const nlohmann::json& j) {
  return j.is_null() ? kNaN : j.get<double>();
}

// Appends conv3x3-BN-ReLU, conv3x3-BN-ReLU, 2x2 max-pool to `seq`.
void add_conv_block(torch::nn::Sequential& seq, int64_t in, int64_t out) {
  for (int64_t i : {in, out}) {
    seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(i, out, 3).padding(1).bias(false)));
    seq->push_back(torch::nn::BatchNorm2d(out));
    seq->push_back(torch::nn::ReLU());
  }
  seq->push_back(torch::nn::MaxPool2d(2));
}

}  // namespace

void ClassifierConfig::validate() const {
  NUMERAL_CHECK(image_size >= 8, "classifier image_size {}: expected at least 8", image_size);
  NUMERAL_CHECK(image_channels == 1 || image_channels == 3,
                "classifier image_channels {}: expected 1 or 3", image_channels);
  NUMERAL_CHECK(num_classes >= 2, "classifier num_classes {}: expected at least 2", num_classes);
  NUMERAL_CHECK(width >= 1, "classifier --width {}: expected at least 1", width);
  NUMERAL_CHECK(feature_dim >= 1, "classifier --feature-dim {}: expected at least 1", feature_dim);
  NUMERAL_CHECK(dropout >= 0 && dropout < 1, "classifier --dropout {}: expected [0, 1)", dropout);
}

void to_json(nlohmann::json& j, const ClassifierConfig& c) {
  j = {{"image_size", c.image_size},   {"image_channels", c.image_channels},
       {"num_classes", c.num_classes}, {"width", c.width},
       {"feature_dim", c.feature_dim}, {"dropout", c.dropout}};
}

void from_json(const nlohmann::json& j, ClassifierConfig& c) {
  c.image_size = j.at("image_size");
  c.image_channels = j.at("image_channels");
  c.num_classes = j.at("num_classes");
  c.width = j.at("width");
  c.feature_dim = j.at("feature_dim");
  c.dropout = j.at("dropout");
}

void ClassifierTrainConfig::validate() const {
  NUMERAL_CHECK(epochs >= 1, "--epochs {}: expected at least 1", epochs);
  NUMERAL_CHECK(batch_size >= 2, "--batch-size {}: expected at least 2", batch_size);
  NUMERAL_CHECK(lr > 0 && std::isfinite(lr), "--lr {}: expected a positive number", lr);
  NUMERAL_CHECK(warmup_fraction >= 0 && warmup_fraction < 1,
                "--warmup-fraction {}: expected [0, 1)", warmup_fraction);
  NUMERAL_CHECK(weight_decay >= 0, "--weight-decay {}: expected at least 0", weight_decay);
  NUMERAL_CHECK(label_smoothing >= 0 && label_smoothing < 1,
                "--label-smoothing {}: expected [0, 1)", label_smoothing);
  NUMERAL_CHECK(max_shift >= 0, "--shift {}: expected at least 0", max_shift);
  NUMERAL_CHECK(steps >= 0, "classifier steps {}: expected at least 0", steps);
  NUMERAL_CHECK(max_rotation >= 0 && max_rotation <= 180,
                "classifier max_rotation {}: expected 0 to 180 degrees", max_rotation);
  NUMERAL_CHECK(elastic_alpha >= 0, "classifier elastic_alpha {}: expected at least 0",
                elastic_alpha);
  NUMERAL_CHECK(elastic_sigma > 0, "classifier elastic_sigma {}: expected > 0", elastic_sigma);
}

int64_t ClassifierTrainConfig::total_steps(int64_t n) const {
  return steps > 0 ? steps : (n + batch_size - 1) / batch_size * epochs;
}

void to_json(nlohmann::json& j, const ClassifierTrainConfig& c) {
  j = {{"epochs", c.epochs},
       {"batch_size", c.batch_size},
       {"lr", c.lr},
       {"warmup_fraction", c.warmup_fraction},
       {"weight_decay", c.weight_decay},
       {"label_smoothing", c.label_smoothing},
       {"max_shift", c.max_shift},
       {"steps", c.steps},
       {"max_rotation", c.max_rotation},
       {"elastic_alpha", c.elastic_alpha},
       {"elastic_sigma", c.elastic_sigma},
       {"seed", c.seed}};
}

void from_json(const nlohmann::json& j, ClassifierTrainConfig& c) {
  c.epochs = j.at("epochs");
  c.batch_size = j.at("batch_size");
  c.lr = j.at("lr");
  c.warmup_fraction = j.at("warmup_fraction");
  c.weight_decay = j.at("weight_decay");
  c.label_smoothing = j.at("label_smoothing");
  c.max_shift = j.at("max_shift");
  c.seed = j.at("seed");
  const ClassifierTrainConfig d;  // fields newer than the first classifier checkpoints
  c.steps = j.value("steps", d.steps);
  c.max_rotation = j.value("max_rotation", d.max_rotation);
  c.elastic_alpha = j.value("elastic_alpha", d.elastic_alpha);
  c.elastic_sigma = j.value("elastic_sigma", d.elastic_sigma);
}

void to_json(nlohmann::json& j, const ClassifierEpoch& e) {
  j = {{"epoch", e.epoch},
       {"train_loss", e.train_loss},
       {"val_accuracy", e.val_accuracy},
       {"lr", e.lr},
       {"elapsed_s", e.elapsed_s}};
}

void from_json(const nlohmann::json& j, ClassifierEpoch& e) {
  e.epoch = j.at("epoch");
  e.train_loss = number_or_nan(j.at("train_loss"));
  e.val_accuracy = number_or_nan(j.at("val_accuracy"));
  e.lr = j.at("lr");
  e.elapsed_s = j.at("elapsed_s");
}

void to_json(nlohmann::json& j, const ClassifierData& d) {
  j = {{"data", d.data},
       {"val_fraction", d.val_fraction},
       {"split_seed", d.split_seed},
       {"val_fingerprint", d.val_fingerprint},
       {"val_fingerprint_hex", fingerprint_hex(d.val_fingerprint)},
       {"train_images", d.train_images},
       {"val_images", d.val_images},
       {"source", d.source}};
}

void from_json(const nlohmann::json& j, ClassifierData& d) {
  d.data = j.at("data");
  d.val_fraction = j.at("val_fraction");
  d.split_seed = j.at("split_seed");
  d.val_fingerprint = j.at("val_fingerprint").get<uint64_t>();
  d.train_images = j.at("train_images");
  d.val_images = j.at("val_images");
  d.source = j.value("source", "");
}

std::string fingerprint_hex(uint64_t fingerprint) {
  return fmt::format("{:016x}", fingerprint);
}

DigitClassifierImpl::DigitClassifierImpl(const ClassifierConfig& config) : config_(config) {
  config_.validate();
  const int64_t w = config_.width;
  torch::nn::Sequential convs;
  add_conv_block(convs, config_.image_channels, w);
  add_conv_block(convs, w, 2 * w);
  convs_ = register_module("convs", convs);
  const int64_t side = config_.image_size / 2 / 2;  // two 2x2 max-pools, rounding down
  fc_features_ = register_module(
      "fc_features",
      torch::nn::Linear(
          torch::nn::LinearOptions(2 * w * side * side, config_.feature_dim).bias(false)));
  norm_features_ = register_module("norm_features", torch::nn::BatchNorm1d(config_.feature_dim));
  fc_out_ = register_module("fc_out", torch::nn::Linear(config_.feature_dim, config_.num_classes));
  dropout_ = register_module("dropout", torch::nn::Dropout(config_.dropout));
}

torch::Tensor DigitClassifierImpl::features(const torch::Tensor& x) {
  auto h = convs_->forward(x).flatten(1);
  return torch::relu(norm_features_->forward(fc_features_->forward(dropout_->forward(h))));
}

torch::Tensor DigitClassifierImpl::head(const torch::Tensor& features) {
  return fc_out_->forward(dropout_->forward(features));
}

double classifier_learning_rate(const ClassifierTrainConfig& c, int64_t step, int64_t total) {
  const double lr_start = c.lr / 25.0, lr_end = c.lr / 1000.0;
  const auto warmup = static_cast<int64_t>(std::llround(c.warmup_fraction * total));
  if (step < warmup) {
    return lr_start + (c.lr - lr_start) * static_cast<double>(step) / static_cast<double>(warmup);
  }
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup - 1));
  const double p = std::min(1.0, static_cast<double>(step - warmup) / span);
  return lr_end + (c.lr - lr_end) * 0.5 * (1.0 + std::cos(M_PI * p));
}

torch::Tensor random_shift(const torch::Tensor& x, int64_t max_shift, at::Generator& generator) {
  NUMERAL_CHECK(x.dim() == 4, "random_shift: expected [B, C, H, W], got {}", x.sizes());
  if (max_shift == 0 || x.size(0) == 0) return x;
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), s = max_shift;
  const auto long_cpu = torch::TensorOptions().dtype(torch::kLong);
  const auto padded = F::pad(x, F::PadFuncOptions({s, s, s, s}).mode(torch::kConstant).value(-1.0));
  const int64_t wp = w + 2 * s;
  const auto dy = torch::randint(0, 2 * s + 1, {b}, generator, long_cpu);
  const auto dx = torch::randint(0, 2 * s + 1, {b}, generator, long_cpu);
  const auto rows = dy.unsqueeze(1) + torch::arange(h, long_cpu);  // [B, H]
  const auto cols = dx.unsqueeze(1) + torch::arange(w, long_cpu);  // [B, W]
  const auto index = (rows.unsqueeze(2) * wp + cols.unsqueeze(1))
                         .reshape({b, 1, h * w})
                         .expand({b, c, h * w})
                         .to(x.device());
  return padded.reshape({b, c, -1}).gather(2, index).reshape({b, c, h, w});
}

torch::Tensor warp_images(const torch::Tensor& x, const torch::Tensor& angles_deg,
                          const torch::Tensor& displacement) {
  NUMERAL_CHECK(x.dim() == 4, "warp_images: expected [B, C, H, W], got {}", x.sizes());
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  NUMERAL_CHECK(angles_deg.dim() == 1 && angles_deg.size(0) == b,
                "warp_images: expected {} angles, got {}", b, angles_deg.sizes());
  NUMERAL_CHECK(displacement.sizes() == torch::IntArrayRef({b, 2, h, w}),
                "warp_images: expected a displacement of [{}, 2, {}, {}], got {}", b, h, w,
                displacement.sizes());
  const auto opts = x.options().dtype(torch::kFloat);
  // Pixel centres in pixels relative to the image centre: [H, W] each.
  const auto ys = torch::arange(h, opts) - (h - 1) / 2.0;
  const auto xs = torch::arange(w, opts) - (w - 1) / 2.0;
  const auto grid_y = ys.view({1, h, 1}).expand({b, h, w});
  const auto grid_x = xs.view({1, 1, w}).expand({b, h, w});
  // The output pixel at p reads the input at R^-1 p + displacement (rotation about the centre).
  const auto radians = angles_deg.to(opts) * (M_PI / 180.0);
  const auto cos_a = radians.cos().view({b, 1, 1}), sin_a = radians.sin().view({b, 1, 1});
  const auto d = displacement.to(opts);
  const auto src_x = cos_a * grid_x + sin_a * grid_y + d.select(1, 0);
  const auto src_y = -sin_a * grid_x + cos_a * grid_y + d.select(1, 1);
  // grid_sample's normalised coordinates (align_corners = true: -1 and 1 are the edge pixels).
  const auto grid = torch::stack({src_x / ((w - 1) / 2.0), src_y / ((h - 1) / 2.0)}, 3);
  // Sampling x + 1 with zero padding and subtracting 1 fills the outside with -1 (black).
  return F::grid_sample(x + 1, grid,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kZeros)
                            .align_corners(true)) -
         1;
}

torch::Tensor random_warp(const torch::Tensor& x, double max_rotation, double elastic_alpha,
                          double elastic_sigma, at::Generator& generator) {
  if ((max_rotation == 0 && elastic_alpha == 0) || x.size(0) == 0) return x;
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
  const auto angles = (torch::rand({b}, generator, cpu) * 2 - 1) * max_rotation;
  auto displacement = torch::zeros({b, 2, h, w}, cpu);
  if (elastic_alpha > 0) {
    // Uniform noise smoothed by a normalised Gaussian, separably, then scaled (Simard et al.).
    const int64_t radius = static_cast<int64_t>(std::ceil(2 * elastic_sigma));
    const auto taps = torch::arange(-radius, radius + 1, cpu);
    auto kernel = torch::exp(-taps.pow(2) / (2 * elastic_sigma * elastic_sigma));
    kernel = kernel / kernel.sum();
    const auto noise = (torch::rand({b * 2, 1, h, w}, generator, cpu) * 2 - 1);
    auto smooth =
        F::conv2d(noise, kernel.view({1, 1, -1, 1}), F::Conv2dFuncOptions().padding({radius, 0}));
    smooth =
        F::conv2d(smooth, kernel.view({1, 1, 1, -1}), F::Conv2dFuncOptions().padding({0, radius}));
    displacement = smooth.view({b, 2, h, w}) * elastic_alpha;
  }
  return warp_images(x, angles.to(x.device()), displacement.to(x.device()));
}

void check_classifier_input(const ClassifierConfig& config, const torch::Tensor& images,
                            const std::string& what) {
  NUMERAL_CHECK(images.dim() == 4, "{}: expected images as [N, C, H, W], got {}", what,
                images.sizes());
  NUMERAL_CHECK(images.size(1) == config.image_channels && images.size(2) == config.image_size &&
                    images.size(3) == config.image_size,
                "{} are {}x{}x{} (HxWxC) but the classifier was trained on {}x{}x{} images; train "
                "a classifier for this image size",
                what, images.size(2), images.size(3), images.size(1), config.image_size,
                config.image_size, config.image_channels);
}

std::vector<ClassifierEpoch> train_classifier(
    DigitClassifier& model, const ClassifierTrainConfig& config, const torch::Tensor& train_x,
    const torch::Tensor& train_y, const torch::Tensor& val_x, const torch::Tensor& val_y,
    const std::function<void(const ClassifierEpoch&)>& on_epoch) {
  config.validate();
  check_classifier_input(model->config(), train_x, "the training images");
  NUMERAL_CHECK(train_y.dim() == 1 && train_y.size(0) == train_x.size(0) && train_x.size(0) >= 2,
                "train_classifier: expected at least 2 images with one label each, got {} images "
                "and labels {}",
                train_x.size(0), train_y.sizes());
  const int64_t k = model->config().num_classes;
  NUMERAL_CHECK(train_y.min().item<int64_t>() >= 0 && train_y.max().item<int64_t>() < k,
                "train_classifier: labels must lie in [0, {}), got [{}, {}]", k,
                train_y.min().item<int64_t>(), train_y.max().item<int64_t>());
  const bool has_val = val_x.defined() && val_x.numel() > 0;
  if (has_val) check_classifier_input(model->config(), val_x, "the held-out images");

  const auto device = model->parameters().front().device();
  const auto x = train_x.to(device, torch::kFloat);
  const auto y = train_y.to(device, torch::kLong);
  const int64_t n = x.size(0);
  torch::manual_seed(config.seed);  // dropout
  auto generator = make_generator(config.seed * 1000003ULL + 17);
  torch::optim::AdamW optimizer(
      model->parameters(), torch::optim::AdamWOptions(config.lr).weight_decay(config.weight_decay));
  const int64_t steps_per_epoch = (n + config.batch_size - 1) / config.batch_size;
  const int64_t total = config.total_steps(n);
  const int64_t epochs = (total + steps_per_epoch - 1) / steps_per_epoch;
  const auto loss_options = F::CrossEntropyFuncOptions().label_smoothing(config.label_smoothing);
  const auto start = std::chrono::steady_clock::now();
  std::vector<ClassifierEpoch> history;
  int64_t step = 0;
  double lr = config.lr;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    model->train();
    const auto perm = torch::randperm(n, generator, torch::kLong).to(device);
    ProgressBar bar(fmt::format("classifier epoch {}/{}", epoch, epochs), steps_per_epoch, "step");
    double loss_sum = 0;
    int64_t loss_count = 0;
    for (int64_t i = 0; i < steps_per_epoch && step < total; ++i, ++step) {
      throw_if_interrupted("classifier training");
      const auto idx = perm.slice(0, i * config.batch_size, (i + 1) * config.batch_size);
      if (idx.size(0) < 2) continue;  // BatchNorm needs two images
      lr = classifier_learning_rate(config, step, total);
      for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
      const auto xb =
          random_warp(random_shift(x.index_select(0, idx), config.max_shift, generator),
                      config.max_rotation, config.elastic_alpha, config.elastic_sigma, generator);
      const auto loss = F::cross_entropy(model->forward(xb), y.index_select(0, idx), loss_options);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      const double value = loss.item<double>();
      NUMERAL_CHECK(std::isfinite(value),
                    "classifier training diverged: loss is {} at epoch {} step {}; lower --lr",
                    value, epoch, step + 1);
      loss_sum += value;
      ++loss_count;
      bar.update(i + 1, fmt::format("loss {:.4f}", loss_sum / loss_count));
    }
    ClassifierEpoch e;
    e.epoch = epoch;
    e.train_loss = loss_sum / std::max<int64_t>(1, loss_count);
    e.lr = lr;
    if (has_val) e.val_accuracy = accuracy(classify(model, val_x).logits, val_y).overall;
    e.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bar.finish(fmt::format("loss {:.4f}", e.train_loss));
    history.push_back(e);
    if (on_epoch) on_epoch(e);
  }
  model->eval();
  return history;
}

ClassifierOutputs classify(DigitClassifier& model, const torch::Tensor& images,
                           int64_t batch_size) {
  check_classifier_input(model->config(), images, "the images to classify");
  NUMERAL_CHECK(batch_size >= 1, "classify: batch size {}: expected at least 1", batch_size);
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> logits, features;
  for (int64_t i = 0; i < images.size(0); i += batch_size) {
    const auto xb = images.slice(0, i, i + batch_size).to(device, torch::kFloat);
    const auto f = model->features(xb);
    features.push_back(f.to(torch::kCPU));
    logits.push_back(model->head(f).to(torch::kCPU));
  }
  if (was_training) model->train();
  ClassifierOutputs out;
  const int64_t k = model->config().num_classes, d = model->config().feature_dim;
  out.logits = logits.empty() ? torch::zeros({0, k}) : torch::cat(logits);
  out.features = features.empty() ? torch::zeros({0, d}) : torch::cat(features);
  return out;
}

void save_classifier(const std::filesystem::path& path, const TrainedClassifier& c) {
  NUMERAL_CHECK(c.model, "save_classifier: no model to save");
  Checkpoint checkpoint;
  checkpoint.kind = "classifier";
  checkpoint.config = {{"model", c.config}, {"train", c.train}, {"data", c.data}};
  nlohmann::json history = nlohmann::json::array();
  for (const auto& e : c.history) history.push_back(e);
  checkpoint.state = {{"val_accuracy", c.val_accuracy},
                      {"history", history},
                      {"torch_version", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR,
                                                    TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}};
  checkpoint.tensors = module_state(*c.model, "model.");
  save_checkpoint(path, checkpoint);
}

TrainedClassifier load_classifier(const std::filesystem::path& path, torch::Device device) {
  TrainedClassifier c;
  c.path = resolve_checkpoint_path(path);
  const Checkpoint checkpoint = load_checkpoint(c.path, "classifier");
  try {
    c.config = checkpoint.config.at("model").get<ClassifierConfig>();
    c.train = checkpoint.config.at("train").get<ClassifierTrainConfig>();
    c.data = checkpoint.config.at("data").get<ClassifierData>();
    c.val_accuracy = number_or_nan(checkpoint.state.value("val_accuracy", nlohmann::json()));
    if (checkpoint.state.contains("history")) {
      c.history = checkpoint.state.at("history").get<std::vector<ClassifierEpoch>>();
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt classifier config: {}", c.path.string(), e.what());
  }
  c.config.validate();
  c.model = DigitClassifier(c.config);
  load_module_state(*c.model, checkpoint.tensors, "model.", c.path.string());
  c.model->to(device);
  c.model->eval();
  return c;
}

void check_classifier_split(const TrainedClassifier& c, const DataSplit& split) {
  NUMERAL_CHECK(c.data.val_fingerprint == split.val_fingerprint,
                "classifier {} was trained against data '{}' (split seed {}, held-out "
                "fingerprint {}) but the evaluation data '{}' has held-out fingerprint {}: its "
                "held-out digits may be ones the classifier trained on; use the same data and "
                "split or retrain with `numeral classifier train --data {}`",
                c.path.string(), c.data.data, c.data.split_seed,
                fingerprint_hex(c.data.val_fingerprint), split.name,
                fingerprint_hex(split.val_fingerprint), split.name);
}

DataOptions classifier_data_options(const TrainedClassifier& classifier) {
  DataOptions options;
  options.data = classifier.data.data;
  options.val_fraction = classifier.data.val_fraction;
  options.split_seed = classifier.data.split_seed;
  options.image_size = classifier.config.image_size;
  options.channels = classifier.config.image_channels;
  return options;
}

}  // namespace numeral
