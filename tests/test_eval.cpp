// Tests for src/numeral/eval: FID against closed forms, accuracy and diversity on hand-made
// inputs, pop-out threshold crossings, the classifier (a tiny training run, checkpoint round
// trip, augmentation), the reports, every bad input, and the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/data/idx.h"
#include "numeral/eval/augment.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/evaluate.h"
#include "numeral/eval/features.h"
#include "numeral/eval/metrics.h"
#include "numeral/eval/popout.h"
#include "numeral/eval/reference.h"
#include "numeral/eval/report.h"
#include "numeral/eval/samples.h"
#include "numeral/io/checkpoint.h"
#include "numeral/model/layers.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

FeatureStats diagonal_stats(const std::vector<double>& mean, const std::vector<double>& var) {
  FeatureStats s;
  s.mean = torch::tensor(mean, torch::kDouble);
  s.cov = torch::diag(torch::tensor(var, torch::kDouble));
  s.count = 1000;
  return s;
}

// ---------------------------------------------------------------------------------------------
// FID

TEST(Fid, IdenticalFeatureSetsGiveZero) {
  torch::manual_seed(1);
  const auto f = torch::randn({400, 16}) * 3 + 1;
  EXPECT_NEAR(frechet_distance(f, f), 0.0, 1e-8);
}

TEST(Fid, DiagonalGaussiansMatchTheClosedForm) {
  // |mu1 - mu2|^2 + sum_i (s1 + s2 - 2 sqrt(s1 s2)).
  const std::vector<double> mu1 = {0, 1, -2, 3}, mu2 = {1, 1, 0, -1};
  const std::vector<double> s1 = {1, 4, 0.25, 9}, s2 = {4, 1, 1, 9};
  double expected = 0;
  for (size_t i = 0; i < mu1.size(); ++i) {
    expected +=
        (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + s1[i] + s2[i] - 2 * std::sqrt(s1[i] * s2[i]);
  }
  EXPECT_NEAR(frechet_distance(diagonal_stats(mu1, s1), diagonal_stats(mu2, s2)), expected, 1e-10);
}

TEST(Fid, NonCommutingTwoByTwoMatchesTheClosedForm) {
  // For 2x2 PSD M: Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)); with M = S1^1/2 S2 S1^1/2,
  // Tr M = Tr(S1 S2) and det M = det S1 det S2.
  FeatureStats a, b;
  a.mean = torch::tensor({0.5, -1.0}, torch::kDouble);
  b.mean = torch::tensor({2.0, 1.0}, torch::kDouble);
  a.cov = torch::tensor({2.0, 0.6, 0.6, 1.0}, torch::kDouble).reshape({2, 2});
  b.cov = torch::tensor({1.0, -0.4, -0.4, 3.0}, torch::kDouble).reshape({2, 2});
  const double tr_ab = a.cov.mm(b.cov).trace().item<double>();
  const double det = torch::det(a.cov).item<double>() * torch::det(b.cov).item<double>();
  const double expected = (a.mean - b.mean).pow(2).sum().item<double>() +
                          a.cov.trace().item<double>() + b.cov.trace().item<double>() -
                          2 * std::sqrt(tr_ab + 2 * std::sqrt(det));
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-10);
  EXPECT_NEAR(frechet_distance(b, a), expected, 1e-10);
}

TEST(Fid, IsSymmetricAndInvariantToRotation) {
  torch::manual_seed(2);
  const auto x = torch::randn({300, 6}, torch::kDouble);
  const auto y = torch::randn({500, 6}, torch::kDouble) * 1.5 + 0.3;
  const double xy = frechet_distance(x, y), yx = frechet_distance(y, x);
  EXPECT_GT(xy, 0.1);
  EXPECT_NEAR(xy, yx, 1e-9 * xy);
  // Rotating both sets by one orthogonal matrix leaves the distance unchanged.
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kDouble)));
  EXPECT_NEAR(frechet_distance(x.mm(q), y.mm(q)), xy, 1e-9 * xy);
}

TEST(Fid, SampleEstimateApproachesTheTruth) {
  torch::manual_seed(3);
  const int64_t n = 20000;
  const auto x = torch::randn({n, 3}, torch::kDouble);  // N(0, I)
  const auto y = torch::randn({n, 3}, torch::kDouble) * 2 + torch::ones({3}, torch::kDouble);
  // |mu|^2 = 3; per dimension 1 + 4 - 2 * 2 = 1 -> 6 in all.
  EXPECT_NEAR(frechet_distance(x, y), 6.0, 0.15);
}

TEST(Fid, SqrtmOfAPsdMatrixSquaresBack) {
  torch::manual_seed(4);
  const auto a = torch::randn({5, 5}, torch::kDouble);
  const auto s = a.mm(a.t()) + torch::eye(5, torch::kDouble) * 0.1;
  const auto r = sqrtm_psd(s);
  EXPECT_TRUE(torch::allclose(r.mm(r), s, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(r, r.t()));
}

TEST(Fid, FewerSamplesThanFeatureDimensionsIsAnError) {
  const auto few = torch::randn({10, 16});
  const auto many = torch::randn({100, 16});
  const std::string message = error_of([&] { frechet_distance(few, many); });
  EXPECT_TRUE(contains(message, "10 samples")) << message;
  EXPECT_TRUE(contains(message, "16 dimensions")) << message;
  error_of([&] { feature_stats(torch::randn({1, 1})); });
  error_of([&] { frechet_distance(torch::randn({50, 4}), torch::randn({50, 5})); });
}

// ---------------------------------------------------------------------------------------------
// Accuracy and diversity

TEST(Accuracy, HandMadeLogits) {
  // Predictions: 0, 1, 2, 2, 0, 1; labels: 0, 1, 1, 2, 2, 0.
  const auto logits = torch::tensor({5.f, 1.f, 0.f,    //
                                     0.f, 3.f, 1.f,    //
                                     0.f, 1.f, 2.f,    //
                                     -1.f, -2.f, 0.f,  //
                                     9.f, 0.f, 8.f,    //
                                     0.f, 0.5f, 0.f})
                          .reshape({6, 3});
  const auto labels = torch::tensor({0, 1, 1, 2, 2, 0}, torch::kLong);
  const AccuracyReport r = accuracy(logits, labels);
  EXPECT_DOUBLE_EQ(r.overall, 3.0 / 6.0);
  ASSERT_EQ(r.per_class.size(), 3u);
  EXPECT_DOUBLE_EQ(r.per_class[0], 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[1], 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[2], 0.5);
  EXPECT_EQ(r.count, (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(r.correct, (std::vector<int64_t>{1, 1, 1}));
}

TEST(Accuracy, AbsentClassIsNaNAndBadInputsFail) {
  const auto logits = torch::tensor({1.f, 0.f, 0.f, 0.f, 1.f, 0.f}).reshape({2, 3});
  const AccuracyReport r = accuracy(logits, torch::tensor({0, 0}, torch::kLong));
  EXPECT_DOUBLE_EQ(r.overall, 0.5);
  EXPECT_TRUE(std::isnan(r.per_class[2]));
  error_of([&] { accuracy(logits, torch::tensor({0, 3}, torch::kLong)); });
  error_of([&] { accuracy(logits, torch::tensor({0}, torch::kLong)); });
}

TEST(Diversity, IdenticalImagesGiveZero) {
  const auto one = torch::rand({1, 1, 28, 28});
  EXPECT_DOUBLE_EQ(mean_pairwise_distance(one.repeat({50, 1, 1, 1})), 0.0);
}

TEST(Diversity, KnownPairDistances) {
  // (0,0), (3,4), (6,8): pairs 5, 10, 5.
  const auto x = torch::tensor({0.0, 0.0, 3.0, 4.0, 6.0, 8.0}).reshape({3, 2});
  EXPECT_NEAR(mean_pairwise_distance(x), 20.0 / 3.0, 1e-12);
  EXPECT_TRUE(std::isnan(mean_pairwise_distance(x.slice(0, 0, 1))));
  // Per class: class 0 = {(0,0), (3,4)}, class 1 = {(6,8)} alone, class 2 empty.
  const auto d = per_class_diversity(x, torch::tensor({0, 0, 1}, torch::kLong), 3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_NEAR(d[0], 5.0, 1e-12);
  EXPECT_TRUE(std::isnan(d[1]));
  EXPECT_TRUE(std::isnan(d[2]));
  EXPECT_NEAR(finite_mean(d), 5.0, 1e-12);
}

TEST(Diversity, MatchesAScalarLoop) {
  torch::manual_seed(5);
  const auto x = torch::randn({17, 2, 3, 3}, torch::kDouble);
  const auto flat = x.reshape({17, -1});
  double sum = 0;
  int pairs = 0;
  for (int i = 0; i < 17; ++i) {
    for (int j = i + 1; j < 17; ++j) {
      double d2 = 0;
      for (int k = 0; k < flat.size(1); ++k) {
        const double diff = flat[i][k].item<double>() - flat[j][k].item<double>();
        d2 += diff * diff;
      }
      sum += std::sqrt(d2);
      ++pairs;
    }
  }
  EXPECT_NEAR(mean_pairwise_distance(x), sum / pairs, 1e-10);
}

TEST(Diversity, BlockedGramMatchesRowByRowDifferences) {
  // More rows than one block (512), with duplicates, against explicit differences.
  torch::manual_seed(7);
  auto x = torch::rand({700, 1, 4, 4});
  x.slice(0, 600, 700).copy_(x.slice(0, 0, 100));
  const auto rows = x.reshape({700, -1}).to(torch::kDouble);
  double sum = 0;
  for (int64_t i = 0; i + 1 < 700; ++i) {
    sum += (rows.slice(0, i + 1) - rows[i]).pow(2).sum(1).sqrt().sum().item<double>();
  }
  EXPECT_NEAR(mean_pairwise_distance(x), sum / (700.0 * 699.0 / 2.0), 1e-9);
}

TEST(Diversity, ACollapsedModelScoresBelowRealDigits) {
  // One "perfect 7" repeated versus varied images of the same class.
  torch::manual_seed(6);
  const auto varied = torch::rand({40, 1, 28, 28}) * 2 - 1;
  const auto collapsed = varied.slice(0, 0, 1).repeat({40, 1, 1, 1});
  const auto labels = torch::full({40}, 7, torch::kLong);
  const auto features = torch::randn({40, 8});
  const DiversityReport real = diversity_report(varied, features, labels, 10);
  const DiversityReport fake =
      diversity_report(collapsed, features.slice(0, 0, 1).repeat({40, 1}), labels, 10);
  EXPECT_GT(real.pixels_mean, 1.0);
  EXPECT_DOUBLE_EQ(fake.pixels_mean, 0.0);
  EXPECT_DOUBLE_EQ(fake.features_mean, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Pop-out

TEST(Popout, FirstCrossingOfAHandMadeCurve) {
  const std::vector<double> curve = {0.1, 0.3, 0.5, 0.6, 0.4, 0.95, 0.97, 0.99};  // 8 steps
  EXPECT_DOUBLE_EQ(*first_crossing(curve, 0.5), 3.0 / 8.0);  // strictly above: not index 2
  EXPECT_DOUBLE_EQ(*first_crossing(curve, 0.9), 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(*first_crossing(curve, 0.05), 0.0);
  EXPECT_FALSE(first_crossing(curve, 0.995).has_value());
  EXPECT_FALSE(first_crossing({}, 0.5).has_value());
  // Settled: from where every later value is above.
  EXPECT_DOUBLE_EQ(*settled_crossing(curve, 0.5), 5.0 / 8.0);  // the dip to 0.4 at index 4
  EXPECT_DOUBLE_EQ(*settled_crossing(curve, 0.9), 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(*settled_crossing(curve, 0.05), 0.0);
  EXPECT_FALSE(settled_crossing({0.95, 0.9, 0.6, 0.4}, 0.5).has_value());  // noise read as it
  EXPECT_FALSE(settled_crossing({}, 0.5).has_value());

  const auto crossings = popout_crossings({curve, {0.0, 0.0, 0.0, 1.0}}, {0.5, 0.9});
  ASSERT_EQ(crossings.size(), 2u);
  EXPECT_DOUBLE_EQ(*crossings[0][0], 3.0 / 8.0);
  EXPECT_DOUBLE_EQ(*crossings[0][1], 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(*crossings[1][0], 0.75);
  EXPECT_DOUBLE_EQ(*crossings[1][1], 0.75);

  const auto x = popout_fractions(4);
  EXPECT_EQ(x, (std::vector<double>{0.0, 0.25, 0.5, 0.75}));
}

TEST(Popout, ReportTablePlotAndStrip) {
  PopoutResult r;
  r.steps = 4;
  r.per_class = 3;
  r.timesteps = {99, 66, 33, 0};
  r.curves = {{0.1, 0.6, 0.95, 1.0}, {0.0, 0.1, 0.2, 0.3}};
  r.crossings = popout_crossings(r.curves, kPopoutThresholds);
  r.settled = popout_crossings(r.curves, kPopoutThresholds, /*settled=*/true);
  r.strip_fractions = {0.0, 0.75};
  r.strip = torch::zeros({2, 2, 1, 28, 28});
  const Report report = popout_report(r, {"0", "1"}, {{"model", "x"}});
  const auto json = render_json(report);
  const auto& data = json["data"];
  EXPECT_DOUBLE_EQ(data["digits"][0]["p50"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(data["digits"][0]["p90"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(data["digits"][0]["p50_settled"].get<double>(), 0.25);
  EXPECT_TRUE(data["digits"][1]["p50"].is_null());
  EXPECT_TRUE(data["digits"][1]["p90_settled"].is_null());
  EXPECT_DOUBLE_EQ(data["mean"]["p50"].get<double>(), 0.25);
  const auto& rows = json["tables"][0]["rows"];
  ASSERT_EQ(rows.size(), 3u);  // two digits and the mean
  EXPECT_DOUBLE_EQ(rows[0]["first > 0.9"].get<double>(), 0.5);
  EXPECT_TRUE(rows[1]["first > 0.5"].is_null());
  const std::string table = render_text(report);
  EXPECT_TRUE(contains(table, "25%")) << table;
  EXPECT_TRUE(contains(table, "never")) << table;
  EXPECT_TRUE(contains(render_markdown(report), "| 0 | 25% | 50% | 25% | 50% | 1.000 |"));
  const Image plot = popout_plot(r, {"0", "1"});
  EXPECT_EQ(plot.width, 800);
  const Image strip = popout_strip(r, {"0", "1"});
  EXPECT_GT(strip.width, 2 * 56);
}

// ---------------------------------------------------------------------------------------------
// Reports

TEST(Report, RendersTheSameNumbersInAllThreeForms) {
  Report report;
  report.title = "a report";
  report.facts = {{"samples", "200 digits"}};
  ReportTable table = comparison_table("metrics");
  add_comparison(table, "accuracy", percent_cell(0.98765), percent_cell(0.5, 1));
  add_comparison(table, "FID", number_cell(2.0704, "{:.3f}"), number_cell(0.3625, "{:.3f}"),
                 /*ratio=*/true);
  add_comparison(table, "undefined", number_cell(std::nan(""), "{:.3f}"), text_cell("n/a"));
  table.note = "a note";
  report.tables.push_back(table);
  report.images = {{"samples", "samples.png"}};

  const std::string text = render_text(report);
  const std::string markdown = render_markdown(report);
  const auto json = render_json(report);
  const auto& rows = json["tables"][0]["rows"];
  ASSERT_EQ(rows.size(), table.rows.size());
  for (size_t r = 0; r < table.rows.size(); ++r) {
    for (size_t c = 0; c < table.columns.size(); ++c) {
      const ReportCell& cell = table.rows[r][c];
      if (!cell.text.empty()) {
        EXPECT_TRUE(contains(text, cell.text)) << cell.text << "\n" << text;
        EXPECT_TRUE(contains(markdown, "| " + cell.text + " |")) << cell.text << "\n" << markdown;
      }
      EXPECT_EQ(rows[r][table.columns[c]], cell.value) << table.columns[c];
    }
  }
  // The numbers themselves: text rounded, JSON exact; NaN is "-" and null; the ratio is computed.
  EXPECT_TRUE(contains(text, "98.77%")) << text;
  EXPECT_TRUE(contains(markdown, "| accuracy | 98.77% | 50.0% |  |")) << markdown;
  EXPECT_DOUBLE_EQ(rows[0]["generated"].get<double>(), 0.98765);
  EXPECT_TRUE(rows[0]["ratio"].is_null());
  EXPECT_TRUE(contains(text, "5.71")) << text;  // 2.0704 / 0.3625
  EXPECT_NEAR(rows[1]["ratio"].get<double>(), 2.0704 / 0.3625, 1e-12);
  EXPECT_TRUE(contains(markdown, "| undefined | - | n/a |  |")) << markdown;
  EXPECT_TRUE(rows[2]["generated"].is_null());
  EXPECT_EQ(rows[2]["real"], "n/a");
  EXPECT_EQ(json["facts"]["samples"], "200 digits");
  EXPECT_TRUE(contains(text, "samples: 200 digits")) << text;
  EXPECT_TRUE(contains(markdown, "- samples: 200 digits")) << markdown;
  EXPECT_TRUE(contains(markdown, "![samples](samples.png)")) << markdown;
  EXPECT_EQ(json["tables"][0]["note"], "a note");
  EXPECT_TRUE(contains(text, "a note")) << text;

  // A row with the wrong number of cells is refused by every renderer.
  report.tables[0].rows.push_back({text_cell("short")});
  EXPECT_THROW(render_text(report), Error);
  EXPECT_THROW(render_markdown(report), Error);
  EXPECT_THROW(render_json(report), Error);
}

// ---------------------------------------------------------------------------------------------
// The classifier

TEST(Classifier, ShapesAndConfigChecks) {
  ClassifierConfig config;
  config.width = 4;
  config.feature_dim = 12;
  DigitClassifier model(config);
  model->eval();
  const auto x = torch::rand({3, 1, 28, 28}) * 2 - 1;
  EXPECT_EQ(model->features(x).sizes(), (std::vector<int64_t>{3, 12}));
  EXPECT_EQ(model->forward(x).sizes(), (std::vector<int64_t>{3, 10}));
  const ClassifierOutputs out = classify(model, x, 2);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{3, 12}));

  ClassifierConfig bad = config;
  bad.image_size = 4;
  error_of([&] { bad.validate(); });
  bad = config;
  bad.dropout = 1.0;
  error_of([&] { bad.validate(); });
  ClassifierTrainConfig train;
  train.epochs = 0;
  error_of([&] { train.validate(); });
}

TEST(Classifier, AnotherImageSizeIsAnError) {
  ClassifierConfig config;
  config.width = 4;
  DigitClassifier model(config);
  const std::string message = error_of([&] { classify(model, torch::zeros({2, 1, 32, 32})); });
  EXPECT_TRUE(contains(message, "32x32x1")) << message;
  EXPECT_TRUE(contains(message, "28x28x1")) << message;
  error_of([&] { classify(model, torch::zeros({2, 3, 28, 28})); });
  error_of([&] { check_classifier_input(config, torch::zeros({28, 28}), "a picture"); });

  TrainedClassifier c;
  c.config = config;
  c.path = "clf.safetensors";
  UNetConfig unet;
  unet.image_size = 32;
  const std::string unet_message = error_of([&] { check_model_compatible(c, unet, "run.x"); });
  EXPECT_TRUE(contains(unet_message, "run.x")) << unet_message;
  unet.image_size = 28;
  check_model_compatible(c, unet, "run.x");  // fine
}

TEST(Classifier, RandomShiftTranslatesEachImageWithinTheLimit) {
  auto x = torch::full({64, 1, 28, 28}, -1.0);
  x.index_put_({torch::indexing::Slice(), 0, 14, 14}, 1.0);  // one white pixel in the centre
  auto gen = make_generator(7);
  const auto y = random_shift(x, 2, gen);
  ASSERT_EQ(y.sizes(), x.sizes());
  std::set<int64_t> offsets;
  for (int64_t i = 0; i < 64; ++i) {
    const auto bright = y[i][0].gt(0).nonzero();
    ASSERT_EQ(bright.size(0), 1) << "image " << i;
    const int64_t r = bright[0][0].item<int64_t>(), c = bright[0][1].item<int64_t>();
    EXPECT_LE(std::abs(r - 14), 2);
    EXPECT_LE(std::abs(c - 14), 2);
    offsets.insert((r - 14) * 10 + (c - 14));
    EXPECT_DOUBLE_EQ(y[i].eq(-1).sum().item<double>(), 28 * 28 - 1);  // filled with black
  }
  EXPECT_GT(offsets.size(), 5u) << "each image should get its own shift";
  EXPECT_TRUE(torch::equal(random_shift(x, 0, gen), x));
}

TEST(Classifier, OneCycleLearningRate) {
  ClassifierTrainConfig c;
  c.lr = 1.0;
  c.warmup_fraction = 0.2;
  EXPECT_NEAR(classifier_learning_rate(c, 0, 100), 1.0 / 25, 1e-12);
  EXPECT_NEAR(classifier_learning_rate(c, 20, 100), 1.0, 1e-12);
  EXPECT_NEAR(classifier_learning_rate(c, 99, 100), 1.0 / 1000, 1e-12);
  for (int64_t s = 21; s < 100; ++s) {
    EXPECT_LE(classifier_learning_rate(c, s, 100), classifier_learning_rate(c, s - 1, 100));
  }
}

// Real digits for the tiny training runs: MNIST from the source tree's data/ if `numeral data get
// mnist` was run, else Debian's Fashion-MNIST; nullopt when neither is present.
std::optional<DataSplit> small_real_split() {
  DataOptions options;
  if (fs::exists(fs::path(NUMERAL_SOURCE_DIR) / "data/mnist")) {
    options.data = "mnist";
    options.root = fs::path(NUMERAL_SOURCE_DIR) / "data";
  } else if (fs::exists(kFashionMnistSystemDir)) {
    options.data = kFashionMnistSystemDir;
  } else {
    return std::nullopt;
  }
  static const DataSplit full = load_data(options);
  DataSplit s = full;
  s.train = Dataset{full.train.images.slice(0, 0, 400), full.train.labels.slice(0, 0, 400)};
  s.val = Dataset{full.val.images.slice(0, 0, 200), full.val.labels.slice(0, 0, 200)};
  return s;
}

ClassifierConfig tiny_config() {
  ClassifierConfig c;
  c.width = 8;
  c.feature_dim = 16;
  c.dropout = 0.1;
  return c;
}

ClassifierTrainConfig tiny_recipe() {
  ClassifierTrainConfig t;
  t.epochs = 4;
  t.batch_size = 32;
  return t;
}

TEST(Classifier, TinyTrainingRunLossFallsAndItLearns) {
  const auto split = small_real_split();
  if (!split)
    GTEST_SKIP() << "no MNIST in data/ and no Fashion-MNIST in " << kFashionMnistSystemDir;
  torch::manual_seed(0);
  DigitClassifier model(tiny_config());
  std::vector<double> losses;
  const auto history =
      train_classifier(model, tiny_recipe(), to_model_range(split->train.images),
                       split->train.labels, to_model_range(split->val.images), split->val.labels,
                       [&](const ClassifierEpoch& e) { losses.push_back(e.train_loss); });
  ASSERT_EQ(history.size(), 4u);
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), 0.8 * losses.front());
  for (const auto& e : history) EXPECT_TRUE(std::isfinite(e.train_loss));
  EXPECT_GT(history.back().val_accuracy, 0.5);  // 400 images, 4 epochs: far above chance
  EXPECT_FALSE(model->is_training());
}

TEST(Classifier, CheckpointRoundTripGivesIdenticalLogits) {
  TempDir dir;
  torch::manual_seed(1);
  TrainedClassifier c;
  c.config = tiny_config();
  c.model = DigitClassifier(c.config);
  // Train two steps so BatchNorm's running statistics are not the defaults.
  const auto x = torch::rand({40, 1, 28, 28}) * 2 - 1;
  const auto y = torch::arange(40, torch::kLong).remainder(10);
  ClassifierTrainConfig recipe = tiny_recipe();
  recipe.epochs = 1;
  c.history = train_classifier(c.model, recipe, x, y);
  c.train = recipe;
  c.val_accuracy = 0.25;
  c.data.data = "mnist";
  c.data.val_fingerprint = 0xfedcba9876543210ULL;  // above 2^63: must survive JSON
  c.data.train_images = 40;
  save_classifier(dir / "clf" / "checkpoint.safetensors", c);

  const TrainedClassifier loaded = load_classifier(dir / "clf");  // the directory resolves
  EXPECT_EQ(loaded.data.val_fingerprint, 0xfedcba9876543210ULL);
  EXPECT_EQ(loaded.config.feature_dim, 16);
  EXPECT_EQ(loaded.train.batch_size, 32);
  EXPECT_DOUBLE_EQ(loaded.val_accuracy, 0.25);
  ASSERT_EQ(loaded.history.size(), 1u);
  EXPECT_FALSE(loaded.model->is_training());
  DigitClassifier m = loaded.model;
  const auto a = classify(c.model, x), b = classify(m, x);
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  EXPECT_TRUE(torch::equal(a.features, b.features));
}

TEST(Classifier, WrongKindMissingFileAndSplitMismatchAreErrors) {
  TempDir dir;
  Checkpoint diffusion;
  diffusion.kind = "diffusion";
  diffusion.config = {{"model", {}}};
  diffusion.tensors["model.w"] = torch::zeros({2});
  save_checkpoint(dir / "run" / "checkpoint.safetensors", diffusion);
  const std::string wrong = error_of([&] { load_classifier(dir / "run"); });
  EXPECT_TRUE(contains(wrong, "diffusion checkpoint")) << wrong;
  EXPECT_TRUE(contains(wrong, "classifier")) << wrong;

  const std::string missing = error_of([&] { load_classifier(dir / "nothing.safetensors"); });
  EXPECT_TRUE(contains(missing, "nothing.safetensors")) << missing;

  TrainedClassifier c;
  c.path = "clf.safetensors";
  c.data.val_fingerprint = 1;
  DataSplit split;
  split.name = "mnist";
  split.val_fingerprint = 2;
  const std::string mismatch = error_of([&] { check_classifier_split(c, split); });
  EXPECT_TRUE(contains(mismatch, "fingerprint")) << mismatch;
  split.val_fingerprint = 1;
  check_classifier_split(c, split);  // fine
}

TEST(Classifier, RunSplitIsCheckedWhenTheRunRecordsIt) {
  TrainedModel m;
  m.path = "run/checkpoint.safetensors";
  DataSplit split;
  split.name = "mnist";
  split.val_fingerprint = 0x0e1dd6748a32df8aULL;
  EXPECT_FALSE(check_run_split(m, split));  // older runs record none
  m.state = {{"val_fingerprint", 0x0e1dd6748a32df8aULL}};
  EXPECT_TRUE(check_run_split(m, split));
  m.state = {{"val_fingerprint", "0e1dd6748a32df8a"}};
  EXPECT_TRUE(check_run_split(m, split));
  m.state = {{"val_fingerprint", 7}};
  const std::string message = error_of([&] { check_run_split(m, split); });
  EXPECT_TRUE(contains(message, "0e1dd6748a32df8a")) << message;
  m.state = {{"val_fingerprint", "not hex"}};
  error_of([&] { check_run_split(m, split); });
}

// ---------------------------------------------------------------------------------------------
// IDX sample sets

// Writes an unsigned-byte IDX file by hand (so an empty one can be made too).
void write_raw_idx(const fs::path& path, const std::vector<uint32_t>& dims,
                   const std::vector<uint8_t>& payload) {
  std::ofstream f(path, std::ios::binary);
  const uint8_t magic[4] = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  f.write(reinterpret_cast<const char*>(magic), 4);
  for (uint32_t d : dims) {
    const uint8_t be[4] = {static_cast<uint8_t>(d >> 24), static_cast<uint8_t>(d >> 16),
                           static_cast<uint8_t>(d >> 8), static_cast<uint8_t>(d)};
    f.write(reinterpret_cast<const char*>(be), 4);
  }
  f.write(reinterpret_cast<const char*>(payload.data()),
          static_cast<std::streamsize>(payload.size()));
}

TEST(IdxSamples, ReadsAPairAndRejectsBadOnes) {
  TempDir dir;
  write_idx(dir / "images.idx", torch::randint(0, 256, {5, 28, 28}, torch::kLong).to(torch::kByte));
  write_idx(dir / "labels.idx", torch::tensor({0, 1, 2, 3, 4}, torch::kLong).to(torch::kByte));
  write_idx(dir / "labels3.idx", torch::tensor({0, 1, 2}, torch::kLong).to(torch::kByte));
  write_raw_idx(dir / "empty.idx", {0, 28, 28}, {});
  write_raw_idx(dir / "empty-labels.idx", {0}, {});

  const SampleSet s = load_idx_samples(dir / "images.idx", dir / "labels.idx");
  EXPECT_EQ(s.images.sizes(), (std::vector<int64_t>{5, 1, 28, 28}));
  EXPECT_EQ(s.labels.scalar_type(), torch::kLong);
  EXPECT_LE(s.images.max().item<float>(), 1.0f);
  EXPECT_GE(s.images.min().item<float>(), -1.0f);
  EXPECT_FALSE(s.generated);

  EXPECT_TRUE(contains(error_of([&] { load_idx_samples(dir / "images.idx", ""); }), "--labels"));
  EXPECT_TRUE(contains(error_of([&] { load_idx_samples(dir / "images.idx", dir / "labels3.idx"); }),
                       "3 labels"));
  EXPECT_TRUE(contains(
      error_of([&] { load_idx_samples(dir / "empty.idx", dir / "empty-labels.idx"); }), "empty"));
  EXPECT_TRUE(contains(error_of([&] { load_idx_samples(dir / "missing.idx", dir / "labels.idx"); }),
                       "missing.idx"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation end to end on real digits (no diffusion model needed)

TEST(Evaluate, RealDigitsAsSamplesMatchTheReference) {
  const auto split = small_real_split();
  if (!split)
    GTEST_SKIP() << "no MNIST in data/ and no Fashion-MNIST in " << kFashionMnistSystemDir;
  torch::manual_seed(0);
  TrainedClassifier c;
  c.config = tiny_config();
  c.train = tiny_recipe();
  c.train.epochs = 2;
  c.model = DigitClassifier(c.config);
  c.path = "tiny.safetensors";
  train_classifier(c.model, c.train, to_model_range(split->train.images), split->train.labels);
  ClassifierExtractor judge(c);
  const RealReference real = make_real_reference(judge, *split);
  EXPECT_EQ(real.floor_size(), 200);
  EXPECT_EQ(real.floor_x.size(0), 200);
  EXPECT_GT(real.judge.fid_floor, 0.0);
  EXPECT_EQ(real.judge.extractor, "classifier tiny.safetensors");

  // Another extractor sees the very same sets: recomputed real features give the same floor, and
  // the held-out digits' own features score FID 0 against them.
  const RealFeatures again = real_features(judge, real);
  EXPECT_DOUBLE_EQ(again.fid_floor, real.judge.fid_floor);
  const FidResult self = fid_against(judge.extract(real.val_x), again);
  EXPECT_NEAR(self.value, 0.0, 1e-6);
  EXPECT_EQ(self.floor_size, 200);

  // The held-out digits themselves as "samples": same accuracy, FID 0, diversity ratio 1.
  SampleSet samples;
  samples.images = real.val_x;
  samples.labels = real.val_y;
  samples.source = "the held-out digits";
  EvalOptions options;
  options.cas = true;
  options.cas_epochs = 1;
  const EvalResult r = evaluate_samples(c, real, samples, options);
  EXPECT_NEAR(r.accuracy.overall, real.val_accuracy, 1e-12);
  EXPECT_NEAR(r.fid.value, 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(r.fid.floor, real.judge.fid_floor);
  EXPECT_NEAR(r.diversity.features_mean, r.real_diversity.features_mean, 1e-9);
  EXPECT_NEAR(r.diversity.pixels_mean, r.real_diversity.pixels_mean, 1e-9);
  ASSERT_TRUE(r.cas.has_value());
  EXPECT_EQ(r.cas->train_images, 200);

  Report report = eval_report(r, real, samples);
  report.images = {{"samples", "s.png"}};
  const auto json = render_json(report);
  EXPECT_EQ(json["data"]["fid"]["generated"].get<int64_t>(), 200);
  EXPECT_TRUE(json["data"]["cas"].is_object());
  EXPECT_EQ(json["tables"][1]["rows"].size(), 10u);  // per class
  const std::string table = render_text(report);
  EXPECT_TRUE(contains(table, "conditional accuracy")) << table;
  EXPECT_TRUE(contains(table, "classifier-FID")) << table;
  EXPECT_TRUE(contains(table, "CAS (train on 200")) << table;
  EXPECT_TRUE(contains(render_markdown(report), "![samples](s.png)"));
  const Image grid = samples_grid(samples, real.class_names, 4);
  EXPECT_GT(grid.height, 10 * 56);

  // A sweep report over two rows renders as a table, Markdown and a plot.
  std::vector<SweepRow> rows(2);
  rows[0].w = 0;
  rows[1].w = 2;
  rows[0].result = rows[1].result = r;
  const Report sweep = sweep_report(rows, real);
  EXPECT_EQ(render_json(sweep)["data"]["rows"].size(), 2u);
  EXPECT_EQ(render_json(sweep)["tables"][0]["rows"].size(), 3u);  // two w and the real row
  EXPECT_TRUE(contains(render_text(sweep), "real"));
  EXPECT_TRUE(contains(render_markdown(sweep), "| 2 |"));
  EXPECT_EQ(sweep_plot(rows, real).width, 1600);

  // Too few samples for the FID is a clear error.
  SampleSet few;
  few.images = real.val_x.slice(0, 0, 10);
  few.labels = real.val_y.slice(0, 0, 10);
  EvalOptions no_cas;
  no_cas.cas = false;
  const std::string message = error_of([&] { evaluate_samples(c, real, few, no_cas); });
  EXPECT_TRUE(contains(message, "10 samples")) << message;
}

TEST(Popout, RunsTheSamplerAndRecordsEveryStep) {
  const TrainedModel m = tiny_diffusion_model();
  torch::manual_seed(1);
  ClassifierConfig cc = tiny_config();
  DigitClassifier classifier(cc);
  classifier->eval();
  GenerateOptions options;
  options.sampler.name = SamplerName::ddim;
  options.sampler.steps = 5;
  options.batch_size = 16;  // two batches of the 20 trajectories
  const PopoutResult r = popout(m, classifier, /*per_class=*/2, options);
  EXPECT_EQ(r.steps, 5);
  ASSERT_EQ(r.curves.size(), 10u);
  for (const auto& curve : r.curves) {
    ASSERT_EQ(curve.size(), 5u);
    for (double p : curve) EXPECT_TRUE(p >= 0.0 && p <= 1.0) << p;
  }
  EXPECT_EQ(r.timesteps, sampling_timesteps(10, 5));
  ASSERT_TRUE(r.strip.defined());
  EXPECT_EQ(r.strip.size(0), 10);
  EXPECT_EQ(r.strip.size(1), static_cast<int64_t>(r.strip_fractions.size()));
  EXPECT_EQ(r.crossings.size(), 10u);

  // generate_samples: balanced labels, the requested count, timed.
  const SampleSet s = generate_samples(m, 20, options);
  EXPECT_EQ(s.images.sizes(), (std::vector<int64_t>{20, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(torch::bincount(s.labels), torch::full({10}, 2, torch::kLong)));
  EXPECT_TRUE(s.generated);
  EXPECT_EQ(s.steps, 5);
  EXPECT_GT(s.seconds, 0.0);
  EXPECT_FALSE(contains(describe_samples(s), "w_guide"));
  EXPECT_FALSE(contains(describe_samples(s), "bfloat16"));
  SampleSet rounded = s;
  rounded.precision = Precision::bfloat16;
  EXPECT_TRUE(contains(describe_samples(rounded), ", network in bfloat16, seed "))
      << describe_samples(rounded);
  // Autoguided digits say so, naming the guide.
  TrainedModel guided = m;
  attach_guide(guided, m);
  GenerateOptions autoguided = options;
  autoguided.w_guide = 2;
  const std::string described = describe_samples(generate_samples(guided, 10, autoguided));
  EXPECT_TRUE(contains(described, ", autoguided by " + m.path.string() + " at w_guide 2"))
      << described;

  error_of([&] { popout(m, classifier, 0, options); });
  ClassifierConfig other = cc;
  other.image_size = 32;
  DigitClassifier wrong(other);
  const std::string message = error_of([&] { popout(m, wrong, 1, options); });
  EXPECT_TRUE(contains(message, "32x32x1")) << message;
  GenerateOptions negative = options;
  negative.forward_batch = -1;  // the same check as generate(), not a silent "auto"
  EXPECT_ERROR(popout(m, classifier, 1, negative), "forward_batch -1: expected at least 0");
}

// ---------------------------------------------------------------------------------------------
// Classic augmentations, the step budget, and `eval augment`

TEST(Augmentations, WarpRotatesAboutTheCentreAndIsTheIdentityAtRest) {
  auto x = torch::full({1, 1, 5, 5}, -1.0);
  x[0][0][0][2] = 1;  // a bright pixel above the centre
  const auto zero = torch::zeros({1, 2, 5, 5});
  EXPECT_TRUE(torch::allclose(warp_images(x, torch::tensor({0.0}), zero), x, 0, 1e-6));
  // 90 degrees turn the image clockwise as displayed: the pixel above the centre goes right.
  const auto turned = warp_images(x, torch::tensor({90.0}), zero);
  EXPECT_NEAR(turned[0][0][2][4].item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(turned[0][0][0][2].item<double>(), -1.0, 1e-5);
  // A displacement of one pixel in x reads the next column: the image moves left; outside is -1.
  auto shift = torch::zeros({1, 2, 5, 5});
  shift[0][0].fill_(1.0);
  const auto moved = warp_images(x, torch::tensor({0.0}), shift);
  EXPECT_NEAR(moved[0][0][0][1].item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(moved[0][0][2][4].item<double>(), -1.0, 1e-5);
  // random_warp: off is x itself; on, it is seeded and keeps the ink roughly where it was.
  auto gen = make_generator(5);
  EXPECT_TRUE(random_warp(x, 0, 0, 4, gen).is_same(x));
  const auto digits = torch::rand({4, 1, 28, 28}) * 2 - 1;
  auto g1 = make_generator(7), g2 = make_generator(7);
  const auto a = random_warp(digits, 15, 34, 4, g1), b = random_warp(digits, 15, 34, 4, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, digits, 0, 1e-3));
  EXPECT_LT((a.mean() - digits.mean()).abs().item<double>(), 0.25);
}

TEST(Classifier, AStepBudgetFixesTheOptimiserSteps) {
  ClassifierTrainConfig c;
  c.batch_size = 32;
  EXPECT_EQ(c.total_steps(400), 13 * 8);  // 8 epochs of 13 steps
  c.steps = 20;
  EXPECT_EQ(c.total_steps(400), 20);
  EXPECT_EQ(c.total_steps(40000), 20);
  const auto split = small_real_split();
  if (!split) GTEST_SKIP() << "no real digits";
  DigitClassifier model(tiny_config());
  const auto history =
      train_classifier(model, c, to_model_range(split->train.images), split->train.labels);
  EXPECT_EQ(history.size(), 2u);  // 13 steps, then 7 of the second epoch
  c.max_rotation = 200;
  EXPECT_ERROR(c.validate(), "max_rotation 200");
}

// A saved tiny generator recording that it trained on `trained_on` and held out `split`'s digits.
fs::path save_generator(const fs::path& dir, const Dataset& trained_on, const DataSplit& split) {
  const TrainedModel m = tiny_diffusion_model();
  Checkpoint c;
  c.kind = "diffusion";
  c.config = m.config;
  c.state = {{"step", 0},
             {"train_fingerprint", content_fingerprint(trained_on)},
             {"val_fingerprint", split.val_fingerprint}};
  c.tensors = module_state(*m.model, "ema.");
  const fs::path path = dir / "checkpoint.safetensors";
  save_checkpoint(path, c);
  return path;
}

TEST(Augment, TinyExperimentReportAndCache) {
  const auto split = small_real_split();
  if (!split) GTEST_SKIP() << "no real digits";
  TempDir dir;
  const TrainedModel full =
      load_trained_model(save_generator(dir / "full", split->train, *split), torch::kCPU);
  const fs::path low = save_generator(dir / "low", first_per_class(split->train, 3, 10), *split);
  AugmentPlan plan;
  plan.generated = {20, 40};
  plan.low = {{3, low}};
  plan.low_generated = 30;
  plan.seeds = 2;
  plan.steps = 3;
  plan.generate.sampler.name = SamplerName::ddim;
  plan.generate.sampler.steps = 2;
  plan.cache = dir / "cache";
  std::vector<std::string> lines;
  const auto print = [&](const std::string& line) { lines.push_back(line); };
  const auto experiments = run_augment(plan, *split, &full, print);
  ASSERT_EQ(experiments.size(), 2u);
  const auto& f = experiments[0];
  ASSERT_EQ(f.arms.size(), 4u);  // real, + 20, + 40, generated alone
  EXPECT_EQ(f.arms[0].name, "400 real");
  EXPECT_EQ(f.arms[2].name, "400 real + 40 generated");
  EXPECT_EQ(f.arms[3].real_images, 0);
  EXPECT_EQ(f.arms[3].generated_images, 400);
  const auto& l = experiments[1];
  EXPECT_EQ(l.per_class, 3);
  ASSERT_EQ(l.arms.size(), 4u);
  EXPECT_EQ(l.arms[1].name, "30 real + classic augmentations");
  EXPECT_EQ(l.arms[3].name, "30 real + classic augmentations + 30 generated");
  for (const auto& e : experiments) {
    for (const auto& arm : e.arms) {
      ASSERT_EQ(arm.accuracies.size(), 2u) << arm.name;
      for (double a : arm.accuracies) EXPECT_TRUE(a >= 0 && a <= 1) << arm.name;
    }
  }
  // Seeded: the same classifier seed on the same digits gives the same accuracy.
  const auto again = held_out_accuracies(
      to_model_range(split->train.images), split->train.labels,
      [] {
        ClassifierTrainConfig c;
        c.steps = 3;
        return c;
      }(),
      2, *split);
  EXPECT_EQ(again, f.arms[0].accuracies);
  // The generated digits are kept as IDX files with their provenance, and reused.
  EXPECT_TRUE(fs::exists(dir / "cache" / "full-400-images-idx3-ubyte"));
  EXPECT_TRUE(fs::exists(dir / "cache" / "low-3-30-labels-idx1-ubyte"));
  lines.clear();
  run_augment(plan, *split, &full, print);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& s) { return contains(s, "reusing"); }),
            2);
  // Autoguided digits are other digits, made afresh; a low-data generator without a guide of its
  // own samples as before (its file's w_guide, 0) and is reused.
  TrainedModel autoguided = full;
  attach_guide(autoguided, full);
  AugmentPlan with_guide = plan;
  with_guide.generate.w_guide = 1;
  lines.clear();
  run_augment(with_guide, *split, &autoguided, print);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& s) { return contains(s, "reusing"); }),
            1);
  // bfloat16 digits are other digits too: neither cache is reused for them.
  if (bfloat16_convolutions_run(torch::kCPU)) {
    AugmentPlan rounded = plan;
    rounded.generate.precision = Precision::bfloat16;
    lines.clear();
    run_augment(rounded, *split, &full, print);
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                            [](const std::string& s) { return contains(s, "reusing"); }),
              0);
  }
  // Without a full-data generator only the low-data experiment runs.
  const auto low_only = run_augment(plan, *split, nullptr, print);
  ASSERT_EQ(low_only.size(), 1u);
  EXPECT_EQ(low_only[0].per_class, 3);
  EXPECT_EQ(low_only[0].arms[0].accuracies, l.arms[0].accuracies);
  // The report: one table per experiment, the JSON and Markdown renderings, the plot.
  const Report report = augment_report(experiments, plan, {{"generator", "tiny"}});
  ASSERT_EQ(report.tables.size(), 2u);
  EXPECT_EQ(report.tables[0].columns.size(), 6u);  // name, mean, sd, gain, 2 seeds
  EXPECT_EQ(report.tables[0].rows.size(), 4u);
  const auto json = render_json(report);
  EXPECT_EQ(json["facts"]["generator"], "tiny");
  EXPECT_EQ(json["data"]["experiments"][1]["per_class"], 3);
  EXPECT_EQ(json["tables"][0]["rows"][0]["training digits"], "400 real");
  EXPECT_TRUE(contains(render_markdown(report), "| 400 real + 20 generated |"));
  EXPECT_TRUE(contains(render_text(report), "Low data: N = 3 real digits per class"));
  const Image plot = augment_plot(experiments);
  EXPECT_GT(plot.width, 800);
  // Low data alone: one panel, of N per class (not the low-data arms on the full-data axis).
  const Image low_plot = augment_plot(low_only);
  EXPECT_EQ(low_plot.width, plot.width / 2);
}

TEST(Augment, BadInputsAreRefusedInOneLine) {
  const auto split = small_real_split();
  if (!split) GTEST_SKIP() << "no real digits";
  TempDir dir;
  const TrainedModel full =
      load_trained_model(save_generator(dir / "full", split->train, *split), torch::kCPU);
  AugmentPlan plan;
  plan.generated = {20};
  plan.seeds = 1;
  plan.steps = 1;
  plan.generate.sampler.name = SamplerName::ddim;
  plan.generate.sampler.steps = 1;
  plan.cache = dir / "cache";
  EXPECT_ERROR(run_augment(plan, *split, nullptr, {}), "nothing to run");
  AugmentPlan negative = plan;
  negative.generated = {-5};
  EXPECT_ERROR(run_augment(negative, *split, &full, {}), "generated digits to add",
               "at least 1, got -5");
  AugmentPlan too_many = plan;
  too_many.low = {{1000, dir / "full"}};
  EXPECT_ERROR(run_augment(too_many, *split, &full, {}), "N = 1000 real digits per class",
               "training split has 400");
  AugmentPlan missing = plan;
  missing.low = {{3, dir / "no-such-run"}};
  EXPECT_ERROR(run_augment(missing, *split, &full, {}), "no-such-run", "no such checkpoint");
  // A generator that trained on other real digits (the full split) for the N = 3 arm.
  AugmentPlan leaky = plan;
  leaky.low = {{3, dir / "full"}};
  EXPECT_ERROR(run_augment(leaky, *split, &full, {}), "the N = 3 generator",
               "trained on other real digits than the 30");
  // And a full-data generator that trained on a subset.
  const TrainedModel partial = load_trained_model(
      save_generator(dir / "partial", first_per_class(split->train, 3, 10), *split), torch::kCPU);
  EXPECT_ERROR(run_augment(plan, *split, &partial, {}),
               "trained on other real digits than the 400");
  // A guide counts as much as the generator: one that saw other digits is refused too.
  TrainedModel guided = full;
  attach_guide(guided, partial);
  EXPECT_ERROR(run_augment(plan, *split, &guided, {}), "the guide of the generator",
               "trained on other real digits than the 400");
}

// ---------------------------------------------------------------------------------------------
// The CLI

TEST(Cli, ClassifierTrainWithABadFlagFails) {
  SKIP_WITHOUT_CLI();
  const CliResult r = run_cli("classifier train --no-such-flag");
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_TRUE(contains(r.err, "no-such-flag")) << r.err;
  const CliResult bad_value = run_cli("classifier train --epochs 0 --out /tmp/numeral-never");
  EXPECT_NE(bad_value.rc, 0);
  EXPECT_EQ(bad_value.err_lines(), 1) << bad_value.err;
  EXPECT_TRUE(contains(bad_value.err, "--epochs 0")) << bad_value.err;
}

TEST(Cli, EvalBadInputsFailWithOneLine) {
  SKIP_WITHOUT_CLI();
  TempDir dir;
  const auto expect_error = [](const CliResult& r, const std::string& part) {
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "numeral: error:")) << r.err;
    EXPECT_TRUE(contains(r.err, part)) << r.err;
  };
  expect_error(run_cli(fmt::format("eval --checkpoint '{}' --classifier '{}'",
                                   (dir / "no-run").string(), (dir / "no-clf").string())),
               "no-clf");
  expect_error(
      run_cli(fmt::format("eval --images '{}' --classifier '{}'", (dir / "x.idx").string(), "clf")),
      "--labels");
  expect_error(run_cli("eval --classifier clf"), "--checkpoint");
  expect_error(run_cli("eval popout --classifier clf"), "--checkpoint");  // it is required
  expect_error(run_cli("eval augment --checkpoint x --generated 8000,-5"), "--generated");
  expect_error(run_cli(fmt::format("eval augment --checkpoint '{}' --low 10", dir.path().string())),
               "--low 10: expected N=RUN");
  expect_error(run_cli(fmt::format("eval augment --checkpoint '{}'", (dir / "none").string())),
               "no such file or directory");
  expect_error(run_cli("eval augment --seeds 2"), "give --checkpoint (full data), --low");
  expect_error(
      run_cli(fmt::format("eval augment --guide g --low 10='{}'", (dir / "none").string())),
      "--guide g: autoguides the full-data generator; it needs --checkpoint");
  expect_error(run_cli("eval --classifier clf --images i --labels l --guide g"),
               "--guide g: guides a model that generates; it needs --checkpoint");
  expect_error(run_cli(fmt::format("eval augment --low 10='{}'", (dir / "none").string())),
               "no such");
}

}  // namespace
}  // namespace numeral
