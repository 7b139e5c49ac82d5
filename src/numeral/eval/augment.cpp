#include "numeral/eval/augment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/eval/metrics.h"
#include "numeral/generate/export.h"
#include "numeral/io/plot.h"

namespace numeral {
namespace {

// What a cached export must match to be reused: the generator and how it sampled.
nlohmann::json sample_provenance(const TrainedModel& generator, int64_t n,
                                 const GenerateOptions& options) {
  nlohmann::json j = {
      {"generator", generator.path.string()},
      {"generator_step", generator.state.value("step", int64_t{0})},
      {"train_fingerprint", generator.state.value("train_fingerprint", uint64_t{0})},
      {"count", n},
      {"sampler", options.sampler.name},
      {"steps", options.sampler.steps},
      {"eta", options.sampler.eta},
      {"variance", options.sampler.variance},
      {"clip_x0", options.sampler.clip_x0},
      {"guidance", options.guidance},
      {"guidance_interval", options.guidance_interval.bounds()},
      {"guide", generator.guide ? generator.guide->path.string() : ""},
      {"guide_step", generator.guide ? generator.guide->state.value("step", int64_t{0}) : 0},
      {"w_guide", options.w_guide},
      {"seed", options.seed},
      {"batch_size", options.batch_size}};
  // (float32 unnamed, as before the option, so that earlier caches still match)
  if (options.precision != Precision::float32) j["precision"] = to_string(options.precision);
  return j;
}

// The real digits and, after them, the first m generated ones.
std::pair<torch::Tensor, torch::Tensor> with_generated(const torch::Tensor& real_x,
                                                       const torch::Tensor& real_y,
                                                       const SampleSet& generated, int64_t m) {
  if (m == 0) return {real_x, real_y};
  const auto gen_x = generated.images.slice(0, 0, m), gen_y = generated.labels.slice(0, 0, m);
  if (!real_x.defined() || real_x.size(0) == 0) return {gen_x, gen_y};
  return {torch::cat({real_x, gen_x}), torch::cat({real_y, gen_y})};
}

// An arm named after what it trains on: "8,000 real + 40,000 generated".
AugmentArm make_arm(int64_t real, int64_t generated, bool classic) {
  AugmentArm arm;
  arm.real_images = real;
  arm.generated_images = generated;
  arm.classic = classic;
  arm.name = real > 0 ? fmt::format("{} real", with_commas(real)) : "";
  if (classic) arm.name += " + classic augmentations";
  if (generated > 0) {
    arm.name +=
        fmt::format("{}{} generated", arm.name.empty() ? "" : " + ", with_commas(generated));
  }
  return arm;
}

}  // namespace

void AugmentPlan::validate() const {
  for (int64_t m : generated) {
    NUMERAL_CHECK(m >= 1, "augment: generated digits to add must be at least 1, got {}", m);
  }
  for (const auto& [n, path] : low) {
    NUMERAL_CHECK(n >= 1, "augment: real digits per class must be at least 1, got {}", n);
    NUMERAL_CHECK(!path.empty(), "augment: no generator given for N = {} per class", n);
  }
  NUMERAL_CHECK(low_generated >= 1, "augment: low-data generated digits must be at least 1, got {}",
                low_generated);
  NUMERAL_CHECK(seeds >= 1, "augment: seeds must be at least 1, got {}", seeds);
  NUMERAL_CHECK(steps >= 1, "augment: classifier steps must be at least 1, got {}", steps);
  NUMERAL_CHECK(rotation >= 0 && rotation <= 180,
                "augment: rotation must be 0 to 180 degrees, got {}", rotation);
  NUMERAL_CHECK(elastic_alpha >= 0 && elastic_sigma > 0,
                "augment: elastic alpha must be >= 0 and sigma > 0, got {} and {}", elastic_alpha,
                elastic_sigma);
  NUMERAL_CHECK(!cache.empty(), "augment: no directory for the generated digits");
}

double AugmentArm::mean() const {
  if (accuracies.empty()) return std::nan("");
  return std::accumulate(accuracies.begin(), accuracies.end(), 0.0) /
         static_cast<double>(accuracies.size());
}

double AugmentArm::spread() const {
  if (accuracies.size() < 2) return 0;
  const double m = mean();
  double sum = 0;
  for (double a : accuracies) sum += (a - m) * (a - m);
  return std::sqrt(sum / static_cast<double>(accuracies.size() - 1));
}

void check_generator_data(const TrainedModel& generator, const Dataset& real,
                          const DataSplit& split, const std::string& what) {
  const std::string path = generator.path.string();
  NUMERAL_CHECK(generator.state.contains("train_fingerprint"),
                "{} {} records no fingerprint of the digits it trained on (it predates them); "
                "train it again to use it here",
                what, path);
  NUMERAL_CHECK(
      generator.state.at("train_fingerprint").get<uint64_t>() == content_fingerprint(real),
      "{} {} trained on other real digits than the {} this arm gets, so it could bring "
      "other real digits in; train it on exactly those (e.g. --per-class N)",
      what, path, with_commas(real.size()));
  NUMERAL_CHECK(generator.state.value("val_fingerprint", uint64_t{0}) == split.val_fingerprint,
                "{} {} held out other digits than the test digits of this split ({}); it may have "
                "trained on them",
                what, path, split.split);
  // Autoguidance's guide shapes the digits too: it must not have seen other real digits either.
  if (generator.guide) check_generator_data(*generator.guide, real, split, "the guide of " + what);
}

SampleSet cached_samples(const TrainedModel& generator, int64_t n, const GenerateOptions& options,
                         const std::filesystem::path& prefix,
                         const std::function<void(const std::string&)>& print) {
  const auto& mc = generator.config.model;
  const IdxExportPaths paths = idx_export_paths(prefix.string(), mc.image_channels);
  const std::filesystem::path sidecar = prefix.string() + ".json";
  const nlohmann::json provenance = sample_provenance(generator, n, options);
  std::error_code ec;
  if (std::filesystem::exists(sidecar, ec)) {
    const auto stored = nlohmann::json::parse(read_file(sidecar), nullptr, false);
    if (stored == provenance && std::filesystem::exists(paths.images, ec) &&
        std::filesystem::exists(paths.labels, ec)) {
      SampleSet samples = load_idx_samples(paths.images, paths.labels);
      if (samples.images.size(0) == n) {
        if (print)
          print(fmt::format("reusing {} generated digits from {}", with_commas(n),
                            paths.images.string()));
        return samples;
      }
    }
  }
  if (print) {
    print(fmt::format("generating {} digits with {} into {}", with_commas(n),
                      generator.path.string(), paths.images.string()));
  }
  SampleSet samples = generate_samples(generator, n, options);
  IdxExport out(prefix.string(), n, /*labelled=*/true,
                {mc.image_channels, mc.image_size, mc.image_size},
                /*overwrite=*/true);
  out.append(samples.images, samples.labels);
  out.commit();
  write_file_atomic(sidecar, provenance.dump(2) + "\n");  // last: the export is whole
  return samples;
}

std::vector<double> held_out_accuracies(const torch::Tensor& x, const torch::Tensor& y,
                                        const ClassifierTrainConfig& train, int64_t seeds,
                                        const DataSplit& split) {
  ClassifierConfig config;
  config.image_size = x.size(2);
  config.image_channels = x.size(1);
  config.num_classes = split.num_classes;
  const auto val_x = to_model_range(split.val.images);
  std::vector<double> accuracies;
  for (int64_t seed = 0; seed < seeds; ++seed) {
    ClassifierTrainConfig c = train;
    c.seed = train.seed + static_cast<uint64_t>(seed);
    torch::manual_seed(c.seed);
    DigitClassifier model(config);
    train_classifier(model, c, x, y);
    accuracies.push_back(accuracy(classify(model, val_x).logits, split.val.labels).overall);
  }
  return accuracies;
}

std::vector<AugmentExperiment> run_augment(const AugmentPlan& plan, const DataSplit& split,
                                           const TrainedModel* full_generator,
                                           const std::function<void(const std::string&)>& print) {
  plan.validate();
  NUMERAL_CHECK(full_generator || !plan.low.empty(),
                "augment: nothing to run: give a full-data generator, low-data generators or both");
  const auto device = plan.device;
  ClassifierTrainConfig base;
  base.steps = plan.steps;
  ClassifierTrainConfig classic = base;
  classic.max_rotation = plan.rotation;
  classic.elastic_alpha = plan.elastic_alpha;
  classic.elastic_sigma = plan.elastic_sigma;
  auto run_arm = [&](AugmentArm arm, const torch::Tensor& x, const torch::Tensor& y) {
    arm.accuracies = held_out_accuracies(x.to(device), y.to(device), arm.classic ? classic : base,
                                         plan.seeds, split);
    if (print) {
      print(fmt::format("  {}: {:.2f}% +- {:.2f}", arm.name, 100 * arm.mean(), 100 * arm.spread()));
    }
    return arm;
  };
  std::vector<AugmentExperiment> experiments;

  // Full data: the whole training split, then with M generated digits added, then generated only.
  if (full_generator) {
    const Dataset& real = split.train;
    check_generator_data(*full_generator, real, split, "the generator");
    const int64_t most =
        std::max(*std::max_element(plan.generated.begin(), plan.generated.end()), real.size());
    const SampleSet generated = cached_samples(*full_generator, most, plan.generate,
                                               plan.cache / fmt::format("full-{}", most), print);
    AugmentExperiment e;
    e.title = fmt::format("Full data: {} real training digits", with_commas(real.size()));
    e.generator = full_generator->path.string();
    if (print) print(e.title);
    const auto real_x = to_model_range(real.images);
    std::vector<int64_t> added = {0};
    added.insert(added.end(), plan.generated.begin(), plan.generated.end());
    for (int64_t m : added) {
      const auto [x, y] = with_generated(real_x, real.labels, generated, m);
      e.arms.push_back(run_arm(make_arm(real.size(), m, false), x, y));
    }
    const auto [x, y] = with_generated({}, {}, generated, real.size());
    e.arms.push_back(run_arm(make_arm(0, real.size(), false), x, y));
    experiments.push_back(std::move(e));
  }

  // Low data: N real digits per class, each with a generator trained on exactly those.
  for (const auto& [n, path] : plan.low) {
    Dataset real;
    try {
      real = first_per_class(split.train, n, split.num_classes);
    } catch (const Error& error) {
      fail("augment: N = {} real digits per class: {} (the training split has {})", n, error.what(),
           with_commas(split.train.size()));
    }
    const TrainedModel generator = load_trained_model(path, device);
    check_generator_data(generator, real, split, fmt::format("the N = {} generator", n));
    // Autoguidance is each generator's own: its bundled guide at its default weight, or none.
    GenerateOptions options = plan.generate;
    options.w_guide = generator.default_w_guide;
    const SampleSet generated =
        cached_samples(generator, plan.low_generated, options,
                       plan.cache / fmt::format("low-{}-{}", n, plan.low_generated), print);
    AugmentExperiment e;
    e.title = fmt::format("Low data: N = {} real digits per class", n);
    e.per_class = n;
    e.generator = generator.path.string();
    if (print) print(e.title);
    const auto real_x = to_model_range(real.images);
    const int64_t m = plan.low_generated;
    for (const bool with_classic : {false, true}) {
      e.arms.push_back(run_arm(make_arm(real.size(), 0, with_classic), real_x, real.labels));
    }
    const auto [x, y] = with_generated(real_x, real.labels, generated, m);
    for (const bool with_classic : {false, true}) {
      e.arms.push_back(run_arm(make_arm(real.size(), m, with_classic), x, y));
    }
    experiments.push_back(std::move(e));
  }
  return experiments;
}

Report augment_report(const std::vector<AugmentExperiment>& experiments, const AugmentPlan& plan,
                      std::vector<std::pair<std::string, std::string>> facts) {
  Report report;
  report.title = "Generated digits as classifier training data (numeral eval augment)";
  report.facts = std::move(facts);
  report.facts.emplace_back(
      "classifiers",
      fmt::format("{} seeds per arm, {} optimiser steps of 128 images each, shifts "
                  "of up to 2 px in every arm; classic augmentations: rotations "
                  "up to {:g} degrees and elastic distortion (alpha {:g}, sigma "
                  "{:g})",
                  plan.seeds, plan.steps, plan.rotation, plan.elastic_alpha, plan.elastic_sigma));
  report.facts.emplace_back("test digits", "the held-out real digits of the split");
  nlohmann::json data = nlohmann::json::array();
  for (const auto& e : experiments) {
    ReportTable table;
    table.title = e.title;
    table.columns = {"training digits", "held-out accuracy", "spread (sd)", "gain over real alone"};
    for (int64_t s = 0; s < plan.seeds; ++s) table.columns.push_back(fmt::format("seed {}", s));
    const AugmentArm& baseline = e.arms.front();
    bool any_gain = false;
    nlohmann::json arms = nlohmann::json::array();
    for (const auto& arm : e.arms) {
      const double gain = arm.mean() - baseline.mean();
      std::vector<ReportCell> row = {text_cell(arm.name), percent_cell(arm.mean()),
                                     number_cell(100 * arm.spread(), "{:.2f}")};
      row.push_back(&arm == &baseline ? text_cell("") : number_cell(100 * gain, "{:+.2f}"));
      for (double a : arm.accuracies) row.push_back(percent_cell(a));
      table.rows.push_back(std::move(row));
      if (arm.generated_images > 0 && arm.real_images > 0 &&
          gain > std::max(arm.spread(), baseline.spread())) {
        any_gain = true;
      }
      arms.push_back({{"name", arm.name},
                      {"real_images", arm.real_images},
                      {"generated_images", arm.generated_images},
                      {"classic", arm.classic},
                      {"accuracies", arm.accuracies},
                      {"mean", arm.mean()},
                      {"spread", arm.spread()}});
    }
    table.note = fmt::format(
        "Gain and spread in percentage points. Generated digits {} held-out accuracy by more than "
        "the seed-to-seed spread here. Generator: {}.",
        any_gain ? "raise" : "do not raise", e.generator);
    report.tables.push_back(std::move(table));
    data.push_back({{"title", e.title},
                    {"per_class", e.per_class},
                    {"generator", e.generator},
                    {"generated_raise_accuracy", any_gain},
                    {"arms", arms}});
  }
  report.data = {{"experiments", data}, {"seeds", plan.seeds}, {"steps", plan.steps}};
  return report;
}

Image augment_plot(const std::vector<AugmentExperiment>& experiments) {
  NUMERAL_CHECK(!experiments.empty(), "augment_plot: no experiments");
  std::vector<Image> panels;
  std::vector<const AugmentExperiment*> low;
  for (const auto& e : experiments) {
    if (e.per_class > 0) low.push_back(&e);
  }
  // Full data: accuracy against the generated digits added, the mean and each seed.
  if (experiments.front().per_class == 0) {
    const AugmentExperiment& full = experiments.front();
    std::vector<Series> series = {{"mean", {}, {}}};
    for (const auto& arm : full.arms) {
      if (arm.real_images == 0) continue;  // generated alone has no place on this axis
      const double m = static_cast<double>(arm.generated_images);
      series[0].x.push_back(m);
      series[0].y.push_back(100 * arm.mean());
      for (size_t s = 0; s < arm.accuracies.size(); ++s) {
        if (series.size() < s + 2) series.push_back({fmt::format("seed {}", s), {}, {}});
        series[s + 1].x.push_back(m);
        series[s + 1].y.push_back(100 * arm.accuracies[s]);
      }
    }
    PlotOptions left;
    left.title = full.title;
    left.x_label = "generated digits added";
    left.y_label = "held-out accuracy (%)";
    panels.push_back(plot_lines(series, left));
  }
  // Low data: accuracy against N per class, one line per kind of arm.
  if (!low.empty()) {
    std::vector<Series> kinds;
    for (const AugmentExperiment* e : low) {
      for (size_t a = 0; a < e->arms.size(); ++a) {
        const auto& arm = e->arms[a];
        if (kinds.size() <= a) {
          std::string kind = arm.generated_images > 0 ? "real + generated" : "real";
          if (arm.classic) kind += " + classic";
          kinds.push_back({kind, {}, {}});
        }
        kinds[a].x.push_back(static_cast<double>(e->per_class));
        kinds[a].y.push_back(100 * arm.mean());
      }
    }
    PlotOptions right;
    right.title = "Low data: N real digits per class";
    right.x_label = "real digits per class (N)";
    right.y_label = "held-out accuracy (%)";
    panels.push_back(plot_lines(kinds, right));
  }
  int width = 0, height = 0;
  for (const auto& p : panels) width += p.width, height = std::max(height, p.height);
  Image out(width, height, Rgb{255, 255, 255});
  int x = 0;
  for (const auto& p : panels) paste(out, p, x, 0), x += p.width;
  return out;
}

}  // namespace numeral
