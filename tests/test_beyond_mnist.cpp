// Data beyond 28x28 grey digits (issue 16): any source fitted to the model's size and channels,
// uint8 storage on the training device, a colour run that learns, class names carried from the
// data into the checkpoint, the U-Net's depth by image size, and colour IDX exports refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/data/idx.h"
#include "numeral/data/make.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/evaluate.h"
#include "numeral/eval/features.h"
#include "numeral/eval/reference.h"
#include "numeral/generate/export.h"
#include "numeral/inference/trained_model.h"
#include "numeral/io/checkpoint.h"
#include "numeral/io/image.h"
#include "numeral/model/unet.h"
#include "numeral/train/trainer.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

DataOptions synthetic(int64_t image_size = 0, int64_t channels = 0) {
  DataOptions o;
  o.data = synthetic_dataset().string();
  o.image_size = image_size;
  o.channels = channels;
  return o;
}

TEST(DataOptions, AnySourceIsFittedToTheAskedSizeAndChannels) {
  const DataSplit native = load_data(synthetic());
  ASSERT_EQ(native.train.images.sizes(), (std::vector<int64_t>{64, 1, 28, 28}));
  const DataSplit big = load_data(synthetic(56, 3));
  ASSERT_EQ(big.train.images.sizes(), (std::vector<int64_t>{64, 3, 56, 56}));
  ASSERT_EQ(big.val.images.sizes(), (std::vector<int64_t>{16, 3, 56, 56}));
  EXPECT_EQ(big.train.images.scalar_type(), torch::kUInt8);
  // Grey became RGB by replication; labels, split and class names are the source's.
  EXPECT_TRUE(torch::equal(big.train.images.select(1, 0), big.train.images.select(1, 2)));
  EXPECT_TRUE(torch::equal(big.train.labels, native.train.labels));
  EXPECT_EQ(big.val_fingerprint, native.val_fingerprint);
  EXPECT_EQ(big.class_names, native.class_names);
  // Doubling a 6x6 white square on black (bilinear, antialiased) keeps its 12x12 core white and
  // the far background black.
  const auto first = big.train.images[0][0];
  const int64_t c = native.train.labels[0].item<int64_t>();
  const int64_t r = 2 + (c / 5) * 12, col = 2 + (c % 5) * 5;
  EXPECT_EQ(first[2 * r + 6][2 * col + 6].item<int>(), 255);
  EXPECT_EQ(first[55][55].item<int>(), 0);
  // At the source's own size nothing changes.
  EXPECT_TRUE(torch::equal(load_data(synthetic(28, 1)).train.images, native.train.images));
  EXPECT_ERROR(load_data(synthetic(28, 2)), "channels 2", "expected >= 0 and 0, 1 or 3");
  EXPECT_ERROR(load_data(synthetic(-4, 1)), "image size -4");
}

TEST(ResolveFromData, WhatTheRunLeavesOpenFollowsTheData) {
  const DataSplit data = load_data(synthetic(32, 3));
  UNetConfig m;
  m.image_size = 0;
  m.image_channels = 0;
  m.num_classes = 0;
  m.channels.clear();
  resolve_from_data(m, data);
  EXPECT_EQ(m.image_size, 32);
  EXPECT_EQ(m.image_channels, 3);
  EXPECT_EQ(m.num_classes, 10);
  EXPECT_EQ(m.channels, default_widths(32));
  // What the run set stays.
  UNetConfig set;
  set.image_size = 28;
  set.channels = {8, 16};
  resolve_from_data(set, data);
  EXPECT_EQ(set.image_size, 28);
  EXPECT_EQ(set.channels, (std::vector<int64_t>{8, 16}));
}

TEST(UNet, DepthFollowsTheImageSizeInGreyAndColour) {
  torch::NoGradGuard no_grad;
  const std::vector<std::pair<int64_t, size_t>> expected = {{28, 3}, {32, 3}, {64, 4}, {128, 5}};
  for (const auto& [size, levels] : expected) {
    const auto widths = default_widths(size);
    ASSERT_EQ(widths.size(), levels) << size;
    for (const int64_t channels : {1, 3}) {
      UNetConfig c;
      c.image_size = size;
      c.image_channels = channels;
      c.channels.clear();
      for (const int64_t w : widths) c.channels.push_back(w / 8);  // the same depth, narrower
      c.groups = 4;
      c.time_embed_dim = 16;
      c.class_embed_dim = 16;
      c.attention = true;
      c.validate();
      EXPECT_LE(c.bottleneck_size(), 8);
      EXPECT_GE(c.bottleneck_size(), 7);
      UNet net(c);
      const auto x = torch::randn({2, channels, size, size});
      const auto out = net->forward(x, torch::tensor({int64_t{3}, int64_t{90}}),
                                    torch::tensor({int64_t{1}, kNullLabel}));
      EXPECT_EQ(out.sizes(), x.sizes()) << size << "x" << size << "x" << channels;
    }
  }
}

// A colour run at another size than its data: the trainer holds uint8 pixels, the loss falls,
// and the checkpoint names the data's classes.
TEST(Trainer, AColourRunHoldsUint8AndItsLossFalls) {
  torch::set_num_threads(1);
  RunConfig c = tiny_run();
  c.model.image_size = 16;
  c.model.image_channels = 3;
  c.model.num_classes = 0;  // the data's
  c.train.epochs = 12;
  const TempDir scratch;
  TrainerOptions o;
  o.run_dir = scratch.path();
  Trainer trainer(c, o);
  EXPECT_EQ(trainer.config().model.num_classes, 10);
  EXPECT_EQ(trainer.train_images().scalar_type(), torch::kUInt8);
  EXPECT_EQ(trainer.train_images().sizes(), (std::vector<int64_t>{64, 3, 16, 16}));
  const auto result = trainer.run();
  ASSERT_EQ(result.history.size(), 12u);
  EXPECT_LT(result.history.back().train_loss, 0.6 * result.history.front().train_loss);
  TrainedModel m = load_trained_model(scratch.path(), torch::kCPU);
  EXPECT_EQ(m.config.model.image_channels, 3);
  EXPECT_EQ(m.class_names, default_class_names("mnist", 10));
  const auto images = torch::randn({1, 3, 16, 16});
  torch::NoGradGuard no_grad;
  EXPECT_EQ(m.model->forward(images, torch::tensor({5}), torch::tensor({2})).sizes(),
            images.sizes());
}

TEST(ClassNames, ComeFromTheDataIntoTheCheckpointAndItsExport) {
  torch::set_num_threads(1);
  // Two classes of 12x12 images in folders: a bright and a dark square.
  const TempDir data;
  for (const char* name : {"dark", "light"}) fs::create_directories(data / name);
  for (int i = 0; i < 10; ++i) {
    Image dark(12, 12, 1, 0), light(12, 12, 1, 0);
    for (int y = 3; y < 9; ++y) {
      for (int x = 3; x < 9; ++x) {
        dark.at(x, y, 0) = static_cast<uint8_t>(60 + i);
        light.at(x, y, 0) = static_cast<uint8_t>(250 - i);
      }
    }
    write_png(data / "dark" / fmt::format("{}.png", i), dark);
    write_png(data / "light" / fmt::format("{}.png", i), light);
  }
  RunConfig c = tiny_run();
  c.train.data = data.path().string();
  c.train.val_fraction = 0.2;
  c.train.batch_size = 8;
  c.train.val_samples = 4;
  c.train.epochs = 1;
  c.model.image_size = 0;
  c.model.image_channels = 0;
  c.model.num_classes = 0;
  const TempDir run;
  TrainerOptions o;
  o.run_dir = run.path();
  Trainer trainer(c, o);
  EXPECT_EQ(trainer.config().model.image_size, 12);
  EXPECT_EQ(trainer.config().model.num_classes, 2);
  trainer.run();
  const TrainedModel m = load_trained_model(run.path(), torch::kCPU);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"dark", "light"}));
  export_for_sampling(run.path(), run / "export.safetensors");
  EXPECT_EQ(load_trained_model(run / "export.safetensors", torch::kCPU).class_names,
            (std::vector<std::string>{"dark", "light"}));
}

TEST(ClassNames, FilesWithoutNamesGetTheirDataDefault) {
  EXPECT_EQ(default_class_names("mnist", 3), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(default_class_names("fashion-mnist", 10).at(7), "Sneaker");
  EXPECT_EQ(default_class_names("fashion-mnist", 20).at(7), "7");  // not Fashion-MNIST's layout
  // The shipped model predates stored names: its classes are the digits.
  const TrainedModel shipped = load_trained_model(
      fs::path(NUMERAL_SOURCE_DIR) / "models" / "mnist.safetensors", torch::kCPU);
  EXPECT_EQ(shipped.class_names, default_class_names("mnist", 10));
}

TEST(ColoredDigits, ADigitInAColourOnAColouredGroundSeededPerImage) {
  const DataSplit grey = load_data(synthetic());
  const Dataset a = colored_digits(grey.train, 0);
  ASSERT_EQ(a.images.sizes(), (std::vector<int64_t>{64, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(a.labels, grey.train.labels));
  EXPECT_TRUE(torch::equal(colored_digits(grey.train, 0).images, a.images));  // reproducible
  EXPECT_FALSE(torch::equal(colored_digits(grey.train, 1).images, a.images));
  std::set<std::vector<int>> foregrounds, backgrounds;
  for (int64_t i = 0; i < a.size(); ++i) {
    const auto img = a.images[i];
    const int64_t c = grey.train.labels[i].item<int64_t>();
    const int64_t r = 2 + (c / 5) * 12, col = 2 + (c % 5) * 5;
    std::vector<int> fg, bg;
    for (int ch = 0; ch < 3; ++ch) {
      fg.push_back(img[ch][r + 2 + 3][col + 2 + 3].item<int>());  // inside the white square
      bg.push_back(img[ch][0][0].item<int>());                    // the border
    }
    // A dark ground under a bright ink.
    EXPECT_GT(fg[0] + fg[1] + fg[2], bg[0] + bg[1] + bg[2] + 150) << i;
    foregrounds.insert(fg);
    backgrounds.insert(bg);
  }
  EXPECT_GE(foregrounds.size(), 6u);  // 8 each, drawn per image
  EXPECT_GE(backgrounds.size(), 6u);
  EXPECT_ERROR(colored_digits(load_data(synthetic(32, 1)).train, 0), "expected grey 28x28");
}

TEST(DataMakeCli, ColoredMnistIsAFolderOfPngsThatLoadsByName) {
  SKIP_WITHOUT_CLI();
  const TempDir root;
  const std::string make = fmt::format("data make colored-mnist --data '{}' --root '{}'",
                                       synthetic_dataset().string(), root.path().string());
  const CliResult made = run_cli(make);
  ASSERT_EQ(made.rc, 0) << made.err;
  EXPECT_TRUE(contains(made.out, "80 colored digits")) << made.out;
  EXPECT_TRUE(fs::exists(root / "colored-mnist" / "train" / "3"));
  EXPECT_TRUE(fs::exists(root / "colored-mnist" / "test"));
  DataOptions o;
  o.data = "colored-mnist";
  o.root = root.path();
  const DataSplit colored = load_data(o);
  EXPECT_EQ(colored.train.images.sizes(), (std::vector<int64_t>{64, 3, 32, 32}));
  EXPECT_EQ(colored.val.size(), 16);
  EXPECT_EQ(colored.class_names, default_class_names("mnist", 10));
  // The PNGs hold what colored_digits made (compared as sums: the folders order them by class).
  const DataSplit grey = load_data(synthetic());
  const Dataset expected = colored_digits(grey.train, 0);
  EXPECT_EQ(colored.train.labels.sum().item<int64_t>(), expected.labels.sum().item<int64_t>());
  EXPECT_EQ(colored.train.images.to(torch::kLong).sum().item<int64_t>(),
            expected.images.to(torch::kLong).sum().item<int64_t>());
  // Made once: a second make is refused, --overwrite replaces it.
  const CliResult again = run_cli(make);
  EXPECT_NE(again.rc, 0);
  EXPECT_EQ(again.err_lines(), 1) << again.err;
  EXPECT_EQ(run_cli(make + " --overwrite").rc, 0);
  const CliResult bad = run_cli(fmt::format("data make cifar --root '{}'", root.path().string()));
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, "data make cifar: expected colored-mnist")) << bad.err;
}

// A second synthetic source: `n` 28x28 images whose class c is a bright bar in row 2c.
struct BarDataset : TempDir {
  explicit BarDataset(int64_t n) {
    auto images = torch::zeros({n, 28, 28}, torch::kByte);
    auto labels = torch::arange(n, torch::kLong).remainder(10).to(torch::kByte);
    for (int64_t i = 0; i < n; ++i)
      images[i].slice(0, 2 * (i % 10) + 3, 2 * (i % 10) + 5).fill_(200);
    write_idx(*this / "train-images-idx3-ubyte", images);
    write_idx(*this / "train-labels-idx1-ubyte", labels);
  }
};

TEST(MixedData, SourcesFollowOneAnotherAsClasses) {
  const BarDataset bars(30);
  DataOptions o = synthetic();
  o.data = synthetic_dataset().string() + "," + bars.path().string();
  const DataSplit mix = load_data(o);
  ASSERT_EQ(mix.parts.size(), 2u);
  EXPECT_EQ(mix.num_classes, 20);
  EXPECT_EQ(mix.parts[1].class_offset, 10);
  EXPECT_EQ(mix.parts[1].num_classes, 10);
  EXPECT_EQ(mix.train.size(), 64 + 24);
  EXPECT_EQ(mix.val.size(), 16 + 6);
  EXPECT_EQ(mix.train.labels.slice(0, 0, 64).max().item<int64_t>(), 9);
  EXPECT_EQ(mix.train.labels.slice(0, 64).min().item<int64_t>(), 10);
  // Both sources name their classes 0-9: each name gets its source's folder in front.
  ASSERT_EQ(mix.class_names.size(), 20u);
  EXPECT_EQ(mix.class_names[3], synthetic_dataset().filename().string() + ":3");
  EXPECT_EQ(mix.class_names[13], bars.path().filename().string() + ":3");
  // The mix is fitted as a whole: the second source at the first's size and channels.
  o.image_size = 32;
  o.channels = 3;
  EXPECT_EQ(load_data(o).train.images.sizes(), (std::vector<int64_t>{88, 3, 32, 32}));
  // A single source is one part.
  const DataSplit one = load_data(synthetic());
  ASSERT_EQ(one.parts.size(), 1u);
  EXPECT_EQ(one.parts[0].num_classes, 10);
  o.data = synthetic_dataset().string() + "," + synthetic_dataset().string();
  EXPECT_ERROR(load_data(o), "is listed twice");
  o.data = synthetic_dataset().string() + ",";
  EXPECT_ERROR(load_data(o), "an empty name in the list");
}

TEST(MixedData, AnEpochDrawsEachSourceAsOftenAsTheLargest) {
  torch::set_num_threads(1);
  const BarDataset bars(30);  // 24 training images against the synthetic set's 64
  RunConfig c = tiny_run();
  c.train.data = synthetic_dataset().string() + "," + bars.path().string();
  c.model.num_classes = 0;
  c.train.epochs = 1;
  const TempDir run;
  TrainerOptions o;
  o.run_dir = run.path();
  Trainer trainer(c, o);
  EXPECT_EQ(trainer.config().model.num_classes, 20);
  // The validation batch (16 images) takes up to 8 of each source: 8 squares, all 6 held-out bars.
  const auto val = trainer.validation_labels();
  EXPECT_EQ(val.lt(10).sum().item<int64_t>(), 8);
  EXPECT_EQ(val.ge(10).sum().item<int64_t>(), 6);
  const auto result = trainer.run();
  EXPECT_EQ(result.steps, 2 * 64 / 16);  // 64 of each source, batches of 16
  const TrainedModel m = load_trained_model(run.path(), torch::kCPU);
  EXPECT_EQ(m.class_names.size(), 20u);
}

TEST(MixedData, EvaluationJudgesEachSourceOnItsOwnClasses) {
  torch::set_num_threads(1);
  const BarDataset bars(30);
  DataOptions o = synthetic();
  o.data = synthetic_dataset().string() + "," + bars.path().string();
  const DataSplit mix = load_data(o);
  torch::manual_seed(0);
  TrainedClassifier c;
  c.config.width = 8;
  c.config.feature_dim = 4;  // the FID of the smaller source's 6 held-out images needs <= 6
  c.config.num_classes = 20;
  c.train.epochs = 3;
  c.train.batch_size = 16;
  c.model = DigitClassifier(c.config);
  c.path = "tiny.safetensors";
  train_classifier(c.model, c.train, to_model_range(mix.train.images), mix.train.labels);
  ClassifierExtractor judge(c);
  const RealReference real = make_real_reference(judge, mix);
  ASSERT_EQ(real.parts.size(), 2u);
  // The held-out images as samples: each source's accuracy is its real accuracy, its FID 0.
  SampleSet samples;
  samples.images = real.val_x;
  samples.labels = real.val_y;
  EvalOptions options;
  options.cas = false;
  const EvalResult r = evaluate_samples(c, real, samples, options);
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].samples, 16);
  EXPECT_EQ(r.parts[1].samples, 6);
  for (const auto& p : r.parts) {
    EXPECT_DOUBLE_EQ(p.accuracy, p.real_accuracy) << p.name;
    EXPECT_NEAR(p.fid.value, 0.0, 1e-6) << p.name;
  }
  // Samples of one source only: the other is not reported.
  SampleSet first;
  first.images = real.val_x.slice(0, 0, 16);
  first.labels = real.val_y.slice(0, 0, 16);
  EXPECT_EQ(evaluate_samples(c, real, first, options).parts.size(), 1u);
  const Report report = eval_report(r, real, samples);
  bool has_table = false;
  for (const auto& t : report.tables) has_table = has_table || t.title == "Per dataset";
  EXPECT_TRUE(has_table);
}

TEST(IdxExport, ColourIsRefusedAndPointsAtPngFolders) {
  const TempDir dir;
  EXPECT_ERROR(IdxExport((dir / "train").string(), 4, true, {3, 8, 8}, false), "grey images",
               "--png-dir");
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// Self-attention at chosen resolutions (--attention-at): after the DownBlocks and UpBlocks whose
// outputs have those sides, counted in the parameters, the summary and the FLOPs.
TEST(UNet, AttentionAtChosenResolutions) {
  torch::set_num_threads(1);
  UNetConfig c;
  c.image_size = 64;
  c.image_channels = 3;
  c.channels = {8, 8, 16, 16};  // sides 64, 32, 16, 8
  c.groups = 4;
  c.time_embed_dim = 16;
  c.class_embed_dim = 16;
  UNet plain(c);
  c.attention_at = {16, 8};
  UNet attending(c);
  // down[1] (side 16), down[2] (side 8) and up[0] (side 16), each 16 wide.
  const int64_t one = parameter_count(*SelfAttention(16, 4, 4));
  EXPECT_EQ(parameter_count(*attending), parameter_count(*plain) + 3 * one);
  const std::string summary = model_summary(attending);
  EXPECT_TRUE(contains(summary, "attention sides [16, 8]")) << summary;
  EXPECT_TRUE(contains(summary, "down[1] DownBlock+attention")) << summary;
  EXPECT_TRUE(contains(summary, "down[2] DownBlock+attention")) << summary;
  EXPECT_TRUE(contains(summary, "up[0] UpBlock+attention")) << summary;
  EXPECT_FALSE(contains(summary, "down[0] DownBlock+attention")) << summary;
  EXPECT_FALSE(contains(summary, "up[1] UpBlock+attention")) << summary;
  const auto attention_flops = [](int64_t width, int64_t n) {
    return 2 * (4 * width * width * n * n + 2 * n * n * n * n * width);
  };
  UNetConfig without = c;
  without.attention_at.clear();
  EXPECT_EQ(forward_flops(c),
            forward_flops(without) + 2 * attention_flops(16, 16) + attention_flops(16, 8));
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 64});
  EXPECT_EQ(attending->forward(x, torch::tensor({1, 2}), torch::tensor({0, 1})).sizes(), x.sizes());
  c.attention_at = {10};
  EXPECT_ERROR(c.validate(), "attention_at 10: no block output has that side (sides: 64,32,16,8)");
  c.attention_at = {32};
  c.attention_heads = 3;
  EXPECT_ERROR(c.validate(), "attention_heads=3 must divide the width 8 at side 32");
}

// --init-from: a model's class embeddings widened for new classes. Before any fine-tuning the old
// classes' columns, every other weight, and so the outputs for old labels and the null label, are
// bit-identical; the new columns keep the new model's own initialisation.
TEST(InitFrom, ExtendingTheClassEmbeddingKeepsTheOldModelBitIdentical) {
  torch::set_num_threads(1);
  UNetConfig small = tiny_run().model;
  torch::manual_seed(1);
  UNet from(small);
  UNetConfig wide = small;
  wide.num_classes = 13;
  torch::manual_seed(2);
  UNet to(wide);
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : to->named_parameters()) before.emplace(p.key(), p.value().clone());
  load_extending_classes(*to, *from, "old");
  const auto old_params = from->named_parameters();
  int widened = 0;
  for (const auto& p : to->named_parameters()) {
    const auto& old = old_params[p.key()];
    if (old.sizes() == p.value().sizes()) {
      EXPECT_TRUE(torch::equal(p.value(), old)) << p.key();
      continue;
    }
    ++widened;
    ASSERT_EQ(p.value().size(1), 13) << p.key();
    EXPECT_TRUE(torch::equal(p.value().narrow(1, 0, 10), old)) << p.key();
    EXPECT_TRUE(torch::equal(p.value().narrow(1, 10, 3), before[p.key()].narrow(1, 10, 3)));
  }
  EXPECT_EQ(widened, 2);  // the bottleneck's and the one UpBlock's class embedding
  torch::NoGradGuard no_grad;
  from->eval();
  to->eval();
  torch::manual_seed(3);
  const auto x = torch::randn({4, 1, 28, 28});
  const auto t = torch::tensor({0, 5, 11, 19});
  const auto labels = torch::tensor(std::vector<int64_t>{0, 9, 4, kNullLabel});
  EXPECT_TRUE(torch::equal(to->forward(x, t, labels), from->forward(x, t, labels)));
  // A new label gives another output.
  EXPECT_FALSE(torch::equal(to->forward(x, t, torch::tensor({12, 12, 12, 12})),
                            from->forward(x, t, torch::tensor({0, 0, 0, 0}))));
  // Another architecture, or fewer classes, is refused before anything is copied.
  UNetConfig other = wide;
  other.channels = {8, 32};
  UNet mismatched(other);
  const auto untouched = mismatched->named_parameters()[0].value().clone();
  EXPECT_ERROR(load_extending_classes(*mismatched, *from, "old"), "old: its model has channels",
               "[8,16]", "[8,32]");
  EXPECT_TRUE(torch::equal(mismatched->named_parameters()[0].value(), untouched));
  UNetConfig fewer = small;
  fewer.num_classes = 5;
  UNet narrower(fewer);
  EXPECT_ERROR(load_extending_classes(*narrower, *from, "old"), "10 classes, more than the 5");
}

// A run that starts from a trained model: its data sources must begin the new run's; the new run
// starts exactly where the old model's EMA weights were, and after its first epoch is ahead of a
// run from scratch.
TEST(InitFrom, AFineTuneStartsFromTheOldModelAndAddsTheNewClasses) {
  torch::set_num_threads(1);
  const BarDataset bars(30);
  const TempDir old_run, tuned_run, scratch_run, bad_run;
  RunConfig c = tiny_run();
  c.model.num_classes = 0;
  c.train.epochs = 8;
  TrainerOptions o;
  o.run_dir = old_run.path();
  Trainer(c, o).run();
  TrainedModel old = load_trained_model(old_run.path(), torch::kCPU);

  RunConfig tune = c;
  tune.train.data = synthetic_dataset().string() + "," + bars.path().string();
  tune.train.epochs = 2;
  tune.train.init_from = old_run.path().string();
  o.run_dir = tuned_run.path();
  auto tuned = std::make_unique<Trainer>(tune, o);
  EXPECT_EQ(tuned->config().model.num_classes, 20);
  {
    torch::NoGradGuard no_grad;
    tuned->model()->eval();
    torch::manual_seed(4);
    const auto x = torch::randn({3, 1, 28, 28});
    const auto t = torch::tensor({1, 7, 15});
    const auto labels = torch::tensor(std::vector<int64_t>{2, 7, kNullLabel});
    EXPECT_TRUE(
        torch::equal(tuned->model()->forward(x, t, labels), old.model->forward(x, t, labels)));
    EXPECT_TRUE(
        torch::equal(tuned->ema_model()->forward(x, t, labels), old.model->forward(x, t, labels)));
    tuned->model()->train();
  }
  const auto tuned_history = tuned->run().history;
  tuned.reset();  // lets the run directory go
  RunConfig fresh = tune;
  fresh.train.init_from.clear();
  o.run_dir = scratch_run.path();
  const auto scratch_history = Trainer(fresh, o).run().history;
  EXPECT_LT(tuned_history.front().val_loss, 0.8 * scratch_history.front().val_loss);
  const TrainedModel m = load_trained_model(tuned_run.path(), torch::kCPU);
  EXPECT_EQ(m.class_names.size(), 20u);
  EXPECT_EQ(m.config.train.init_from, old_run.path().string());
  // The images its weights have seen: the old model's and the new run's (eval augment reads it),
  // also after a resume.
  const TrainedModel scratch = load_trained_model(scratch_run.path(), torch::kCPU);
  const auto seen = [](const TrainedModel& t) {
    return t.state.at("train_fingerprint").get<uint64_t>();
  };
  EXPECT_EQ(seen(m), combine_fingerprints(seen(old), seen(scratch)));
  RunConfig longer = tune;
  longer.train.epochs = 3;
  o.run_dir = tuned_run.path();
  o.resume = true;
  Trainer(longer, o).run();
  o.resume = false;
  EXPECT_EQ(seen(load_trained_model(tuned_run.path(), torch::kCPU)), seen(m));

  // The old sources must come first, in order; the diffusion must be the same.
  RunConfig swapped = tune;
  swapped.train.data = bars.path().string() + "," + synthetic_dataset().string();
  o.run_dir = bad_run.path();
  EXPECT_ERROR(Trainer(swapped, o), "it was trained on --data " + synthetic_dataset().string(),
               "which must begin this run's --data " + swapped.train.data);
  RunConfig other = tune;
  other.diffusion.timesteps = 30;
  EXPECT_ERROR(Trainer(other, o), "its diffusion has timesteps 20, this run 30");
  // It must have held out what this run holds out: another split could put its training images
  // among this run's held-out ones.
  RunConfig resplit = tune;
  resplit.train.split_seed = 1;
  EXPECT_ERROR(Trainer(resplit, o), "it held out other images of " + synthetic_dataset().string(),
               "than this run does");
  RunConfig missing = tune;
  missing.train.init_from = (bad_run / "nothing-here").string();
  EXPECT_ERROR(Trainer(missing, o), "nothing-here");
  EXPECT_FALSE(fs::exists(bad_run / "checkpoint.safetensors"));
}

// A run fitted to another size than its data's (--image-size) is judged at that size: `eval`
// loads the held-out images as the run and its classifier saw them.
TEST(EvalCli, JudgesARunAtItsFittedImageSize) {
  SKIP_WITHOUT_CLI();
  torch::set_num_threads(1);
  const TempDir dir;
  const std::string data = synthetic_dataset().string();
  const CliResult judge =
      run_cli(fmt::format("classifier train --data '{}' --image-size 32 --epochs 1 --width 4 "
                          "--feature-dim 8 --out '{}' --threads 1",
                          data, (dir / "judge").string()),
              dir.path());
  ASSERT_EQ(judge.rc, 0) << judge.err;
  RunConfig c = tiny_run();
  c.model.image_size = 32;
  c.train.max_steps = 1;
  TrainerOptions o;
  o.run_dir = dir / "run";
  Trainer(c, o).run();
  const CliResult eval = run_cli(
      fmt::format("eval --checkpoint '{}' --classifier '{}' --samples 20 --no-cas --sampler ddim "
                  "--steps 2 --threads 1",
                  (dir / "run").string(), (dir / "judge").string()),
      dir.path());
  ASSERT_EQ(eval.rc, 0) << eval.err;
  EXPECT_TRUE(contains(eval.out, "Generated against real digits")) << eval.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "eval")) << eval.out;
  const nlohmann::json report =
      nlohmann::json::parse(read_file(dir / "run" / "eval" / "report.json"));
  EXPECT_EQ(report["data"]["guidance"], kDefaultGuidance);

  // A copy that names its own guidance weight is judged at it unless --w says otherwise.
  ExportOptions own;
  own.default_w = 0.5;
  export_for_sampling(dir / "run", dir / "own.safetensors", own);
  const std::string again = fmt::format(
      "eval --checkpoint '{}' --classifier '{}' --samples 20 --no-cas --sampler ddim --steps 2 "
      "--threads 1 --out '{}'",
      (dir / "own.safetensors").string(), (dir / "judge").string(), (dir / "own").string());
  ASSERT_EQ(run_cli(again, dir.path()).rc, 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "own" / "report.json"))["data"]["guidance"], 0.5);
  ASSERT_EQ(run_cli(again + " --w 1", dir.path()).rc, 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "own" / "report.json"))["data"]["guidance"], 1);
}

TEST(InitFromCli, TakesTheModelsSettingsAndRefusesOthers) {
  SKIP_WITHOUT_CLI();
  torch::set_num_threads(1);
  const TempDir dir;
  RunConfig c = tiny_run();
  c.train.epochs = 1;
  TrainerOptions o;
  o.run_dir = dir / "old";
  Trainer(c, o).run();
  const std::string data = synthetic_dataset().string();
  const CliResult refused = run_cli(fmt::format("train --data {} --init-from '{}' --channels 8,32 "
                                                "--run-dir '{}' --threads 1",
                                                data, (dir / "old").string(), (dir / "a").string()),
                                    dir.path());
  EXPECT_EQ(refused.rc, 1);
  EXPECT_TRUE(contains(refused.err,
                       "keeps that model's settings: --channels is 8,32 here but "
                       "8,16 there; drop it"))
      << refused.err;
  const CliResult ok = run_cli(
      fmt::format("train --data {} --init-from '{}' --epochs 1 --batch-size 16 --val-samples 16 "
                  "--run-dir '{}' --threads 1",
                  data, (dir / "old").string(), (dir / "b").string()),
      dir.path());
  ASSERT_EQ(ok.rc, 0) << ok.err;
  EXPECT_TRUE(contains(ok.out, "classes kept, 0 added")) << ok.out;
  const TrainedModel tuned = load_trained_model(dir / "b", torch::kCPU);
  EXPECT_EQ(tuned.config.model.channels, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(tuned.config.diffusion.timesteps, 20);
  // Resuming keeps the run (and does not start from the old model again).
  const CliResult resumed = run_cli(
      fmt::format("train --run-dir '{}' --resume --epochs 2 --threads 1", (dir / "b").string()),
      dir.path());
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_FALSE(contains(resumed.out, "initialised from")) << resumed.out;
}

TEST(SampleCli, ClassIsTheFlagAndDigitItsAlias) {
  SKIP_WITHOUT_CLI();
  const CliResult help = run_cli("sample --help");
  ASSERT_EQ(help.rc, 0) << help.err;
  EXPECT_TRUE(contains(help.out, "--classes,--class,--digit")) << help.out;
}

}  // namespace
}  // namespace numeral
