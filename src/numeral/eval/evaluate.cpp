#include "numeral/eval/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/io/plot.h"

namespace numeral {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// JSON null for NaN/inf (nlohmann would write null anyway; this keeps the intent visible).
nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

nlohmann::json numbers(const std::vector<double>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (double v : values) out.push_back(number(v));
  return out;
}

double ratio(double a, double b) {
  return b > 0 && std::isfinite(a) ? a / b : kNaN;
}

std::string class_name(const std::vector<std::string>& names, size_t k) {
  return k < names.size() ? names[k] : std::to_string(k);
}

nlohmann::json diversity_json(const DiversityReport& gen, const DiversityReport& real) {
  nlohmann::json j;
  for (const bool features : {true, false}) {
    const auto& g = features ? gen.features : gen.pixels;
    const auto& r = features ? real.features : real.pixels;
    const double gm = features ? gen.features_mean : gen.pixels_mean;
    const double rm = features ? real.features_mean : real.pixels_mean;
    j[features ? "features" : "pixels"] = {{"generated", numbers(g)},
                                           {"real", numbers(r)},
                                           {"generated_mean", number(gm)},
                                           {"real_mean", number(rm)},
                                           {"ratio", number(ratio(gm, rm))}};
  }
  return j;
}

// What both reports say about the judge and the real reference, for JSON readers.
nlohmann::json reference_json(const RealReference& real) {
  return {{"judge",
           {{"name", real.judge.extractor},
            {"feature_space", real.judge.feature_space},
            {"feature_dim", real.judge.val.features.size(1)},
            {"val_accuracy", number(real.val_accuracy)}}},
          {"reference",
           {{"data", real.data},
            {"split", real.split},
            {"val_fingerprint", fingerprint_hex(real.val_fingerprint)},
            {"held_out", real.val_y.size(0)},
            {"floor_set", real.floor_size()}}},
          {"class_names", real.class_names}};
}

}  // namespace

EvalResult evaluate_samples(TrainedClassifier& classifier, const RealReference& real,
                            const SampleSet& samples, const EvalOptions& options) {
  const auto& cfg = classifier.config;
  ClassifierExtractor judge(classifier);
  NUMERAL_CHECK(judge.name() == real.judge.extractor,
                "evaluate: the reference was judged by {} but the samples would be by {}",
                real.judge.extractor, judge.name());
  check_classifier_input(cfg, samples.images, "the samples");
  NUMERAL_CHECK(samples.labels.dim() == 1 && samples.labels.size(0) == samples.images.size(0),
                "evaluate: expected one label per sample, got {} labels for {} images",
                samples.labels.sizes(), samples.images.size(0));
  NUMERAL_CHECK(samples.labels.min().item<int64_t>() >= 0 &&
                    samples.labels.max().item<int64_t>() < cfg.num_classes,
                "evaluate: sample labels must lie in [0, {}), got [{}, {}]", cfg.num_classes,
                samples.labels.min().item<int64_t>(), samples.labels.max().item<int64_t>());
  EvalResult r;
  r.samples = samples.images.size(0);
  const ExtractedFeatures out = judge.extract(samples.images);
  r.accuracy = accuracy(out.logits, samples.labels);
  r.fid = fid_against(out, real.judge);
  r.diversity = diversity_report(samples.images, out.features, samples.labels, cfg.num_classes);
  r.real_diversity = real.diversity;
  if (real.parts.size() > 1) {
    for (const auto& part : real.parts) {
      PartEval e;
      e.name = part.name;
      const auto gen = part.indices_in(samples.labels);
      const auto val = part.indices_in(real.val_y);
      const auto floor = part.indices_in(real.floor_y);
      e.samples = gen.size(0);
      if (e.samples == 0) continue;  // not asked for
      const auto gen_labels = samples.labels.index_select(0, gen);
      e.accuracy = accuracy(out.logits.index_select(0, gen), gen_labels).overall;
      e.real_accuracy =
          accuracy(real.judge.val.logits.index_select(0, val), real.val_y.index_select(0, val))
              .overall;
      const auto gen_features = out.features.index_select(0, gen);
      const auto val_features = real.judge.val.features.index_select(0, val);
      e.fid = r.fid;
      e.fid.samples = e.samples;
      e.fid.real = val.size(0);
      e.fid.floor_size = floor.size(0);
      // A covariance needs at least as many images as feature dimensions: else no FID (NaN).
      const bool enough = std::min({e.samples, val.size(0), floor.size(0)}) >= out.features.size(1);
      e.fid.value = enough ? frechet_distance(gen_features, val_features) : kNaN;
      e.fid.floor =
          enough ? frechet_distance(val_features, real.judge.floor.features.index_select(0, floor))
                 : kNaN;
      r.parts.push_back(e);
    }
  }
  if (options.cas) {
    CasOptions cas;
    cas.epochs = options.cas_epochs;
    cas.seed = options.seed;
    cas.print = options.print;
    r.cas = classification_accuracy_score(classifier, samples.images, samples.labels, real, cas);
  }
  return r;
}

Report eval_report(const EvalResult& result, const RealReference& real, const SampleSet& samples,
                   ReportFacts facts) {
  Report report;
  report.title = "numeral eval";
  const std::string noun = item_noun(real.class_names);
  report.facts = {{"samples", describe_samples(samples, noun)},
                  {"reference", describe_reference(real)},
                  {"judge", describe_judge(real)}};
  report.facts.insert(report.facts.end(), facts.begin(), facts.end());

  const FidResult& fid = result.fid;
  ReportTable metrics = comparison_table("Generated against real " + noun);
  add_comparison(metrics, "conditional accuracy (classifier agrees)",
                 percent_cell(result.accuracy.overall), percent_cell(real.val_accuracy));
  add_comparison(metrics,
                 fmt::format("classifier-FID ({} vs {}; real = floor)", with_commas(fid.samples),
                             with_commas(fid.real)),
                 number_cell(fid.value, "{:.3f}"), number_cell(fid.floor, "{:.3f}"));
  if (result.cas) {
    add_comparison(metrics,
                   fmt::format("CAS (train on {}, test on held-out real)",
                               with_commas(result.cas->train_images)),
                   percent_cell(result.cas->synthetic), percent_cell(result.cas->real));
  } else {
    add_comparison(metrics, "CAS", empty_cell("skipped"), empty_cell("-"));
  }
  const auto& gen = result.diversity;
  const auto& ref = result.real_diversity;
  add_comparison(metrics, "diversity: mean pair distance, features",
                 number_cell(gen.features_mean, "{:.3f}"), number_cell(ref.features_mean, "{:.3f}"),
                 /*ratio=*/true);
  add_comparison(metrics, "diversity: mean pair distance, pixels",
                 number_cell(gen.pixels_mean, "{:.3f}"), number_cell(ref.pixels_mean, "{:.3f}"),
                 /*ratio=*/true);
  metrics.note = fmt::format(
      "FID: Fréchet distance between {} features of {} generated and {} held-out real {} "
      "(float64, symmetric eigendecompositions). The floor is the same distance between two "
      "disjoint real sets: the {} held-out {} and {} training {} (a seeded subset, real "
      "and disjoint from the held-out ones; the classifier trained on them). FID needs at least "
      "as many samples as feature dimensions; numeral uses {} per side by default. Diversity: "
      "mean Euclidean distance between all pairs of {} of one class, in the classifier's "
      "feature space and in pixel space ([0, 1] pixels), averaged over classes; a ratio "
      "(generated / real) well below 1 means the model repeats itself.",
      fid.feature_space, with_commas(fid.samples), with_commas(fid.real), noun,
      with_commas(fid.real), noun, with_commas(fid.floor_size), noun,
      with_commas(kDefaultEvalSamples), noun);
  if (result.cas) {
    metrics.note += fmt::format(
        " CAS: a fresh classifier (same recipe, {} epochs) trained only on the {} generated "
        "{} and tested on the held-out real ones, beside one trained on as many real "
        "training {}.",
        result.cas->epochs, with_commas(result.cas->train_images), noun, noun);
  }
  report.tables.push_back(std::move(metrics));

  ReportTable per_class;
  per_class.title = "Per class";
  per_class.columns = {"class",
                       "accuracy",
                       "diversity feat. gen",
                       "diversity feat. real",
                       "diversity pix. gen",
                       "diversity pix. real"};
  for (size_t k = 0; k < result.accuracy.per_class.size(); ++k) {
    auto at = [k](const std::vector<double>& v) { return k < v.size() ? v[k] : kNaN; };
    per_class.rows.push_back(
        {text_cell(class_name(real.class_names, k)), percent_cell(result.accuracy.per_class[k], 1),
         number_cell(at(gen.features), "{:.2f}"), number_cell(at(ref.features), "{:.2f}"),
         number_cell(at(gen.pixels), "{:.2f}"), number_cell(at(ref.pixels), "{:.2f}")});
  }
  report.tables.push_back(std::move(per_class));

  if (!result.parts.empty()) {
    ReportTable parts;
    parts.title = "Per dataset";
    parts.columns = {"dataset",        "samples", "accuracy",   "real accuracy",
                     "classifier-FID", "floor",   "FID / floor"};
    for (const auto& p : result.parts) {
      parts.rows.push_back({text_cell(p.name), text_cell(with_commas(p.samples)),
                            percent_cell(p.accuracy), percent_cell(p.real_accuracy),
                            number_cell(p.fid.value, "{:.3f}"), number_cell(p.fid.floor, "{:.3f}"),
                            number_cell(p.fid.value / p.fid.floor, "{:.2f}")});
    }
    parts.note =
        "Each source of the mix judged on its own classes: the samples asked to be of them, "
        "against its own held-out images (FID) and its own floor-set images (floor).";
    report.tables.push_back(std::move(parts));
  }

  nlohmann::json data = reference_json(real);
  data["report"] = "numeral eval";
  data["numeral_version"] = NUMERAL_VERSION;
  data["samples"] = {{"source", samples.source},
                     {"generated", samples.generated},
                     {"count", result.samples},
                     {"sampler", samples.sampler},
                     {"steps", samples.steps},
                     {"guidance", samples.guidance},
                     {"seed", samples.seed},
                     {"seconds", number(samples.seconds)},
                     {"images_per_s", number(samples.images_per_s())}};
  data["accuracy"] = {{"overall", number(result.accuracy.overall)},
                      {"real", number(real.val_accuracy)},
                      {"per_class", numbers(result.accuracy.per_class)},
                      {"correct", result.accuracy.correct},
                      {"count", result.accuracy.count}};
  data["fid"] = {{"value", number(fid.value)},  {"floor", number(fid.floor)},
                 {"generated", fid.samples},    {"real", fid.real},
                 {"floor_set", fid.floor_size}, {"features", fid.feature_space}};
  if (result.cas) {
    data["cas"] = {{"synthetic", number(result.cas->synthetic)},
                   {"real", number(result.cas->real)},
                   {"train_images", result.cas->train_images},
                   {"epochs", result.cas->epochs},
                   {"seconds", number(result.cas->seconds)}};
  } else {
    data["cas"] = nullptr;
  }
  data["diversity"] = diversity_json(gen, ref);
  report.data = std::move(data);
  return report;
}

ReportTable selection_table(const EvalResult& plain, const SampleSet& plain_samples,
                            const EvalResult& selected, const SampleSet& selected_samples) {
  ReportTable t;
  t.title = fmt::format("Selection: best of {} by {}", selected_samples.best_of,
                        selected_samples.rank_by);
  t.columns = {"metric", "best of 1", fmt::format("best of {}", selected_samples.best_of)};
  auto row = [&](const std::string& metric, ReportCell a, ReportCell b) {
    t.rows.push_back({text_cell(metric), std::move(a), std::move(b)});
  };
  row("conditional accuracy", percent_cell(plain.accuracy.overall),
      percent_cell(selected.accuracy.overall));
  row("classifier-FID", number_cell(plain.fid.value, "{:.3f}"),
      number_cell(selected.fid.value, "{:.3f}"));
  row("diversity ratio, features",
      number_cell(plain.diversity.features_mean / plain.real_diversity.features_mean, "{:.2f}"),
      number_cell(selected.diversity.features_mean / selected.real_diversity.features_mean,
                  "{:.2f}"));
  row("diversity ratio, pixels",
      number_cell(plain.diversity.pixels_mean / plain.real_diversity.pixels_mean, "{:.2f}"),
      number_cell(selected.diversity.pixels_mean / selected.real_diversity.pixels_mean, "{:.2f}"));
  row("seconds (generation + ranking)", number_cell(plain_samples.seconds, "{:.1f}"),
      number_cell(selected_samples.seconds, "{:.1f}"));
  row("of which ranking", number_cell(0, "{:.1f}"),
      number_cell(selected_samples.scoring_seconds, "{:.1f}"));
  row("digits per second", number_cell(plain_samples.images_per_s(), "{:.1f}"),
      number_cell(selected_samples.images_per_s(), "{:.1f}"));
  t.note = fmt::format(
      "The same model, sampler and seed; each selected digit is the best of {} candidates. A "
      "ranker that is also the judge (the same classifier) flatters accuracy: rank with another "
      "classifier (--rank-classifier) or CLIP for a fair figure.",
      selected_samples.best_of);
  return t;
}

Report sweep_report(const std::vector<SweepRow>& rows, const RealReference& real,
                    ReportFacts facts) {
  Report report;
  report.title = "numeral eval sweep: classifier-free guidance weight w";
  report.facts = {{"reference", describe_reference(real)}, {"judge", describe_judge(real)}};
  report.facts.insert(report.facts.end(), facts.begin(), facts.end());

  ReportTable table;
  table.title = "Accuracy, FID and diversity against w";
  table.columns = {"w",           "accuracy",       "FID",        "diversity feat.",
                   "feat. ratio", "diversity pix.", "pix. ratio", "img/s"};
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    const auto& res = row.result;
    const double feat_ratio = ratio(res.diversity.features_mean, res.real_diversity.features_mean);
    const double pix_ratio = ratio(res.diversity.pixels_mean, res.real_diversity.pixels_mean);
    table.rows.push_back(
        {number_cell(row.w, "{:g}"), percent_cell(res.accuracy.overall),
         number_cell(res.fid.value, "{:.3f}"), number_cell(res.diversity.features_mean, "{:.3f}"),
         number_cell(feat_ratio, "{:.2f}"), number_cell(res.diversity.pixels_mean, "{:.3f}"),
         number_cell(pix_ratio, "{:.2f}"), number_cell(row.images_per_s, "{:.1f}")});
    out.push_back({{"w", row.w},
                   {"samples", res.samples},
                   {"accuracy", number(res.accuracy.overall)},
                   {"accuracy_per_class", numbers(res.accuracy.per_class)},
                   {"fid", number(res.fid.value)},
                   {"diversity_features", number(res.diversity.features_mean)},
                   {"diversity_pixels", number(res.diversity.pixels_mean)},
                   {"diversity_features_ratio", number(feat_ratio)},
                   {"diversity_pixels_ratio", number(pix_ratio)},
                   {"seconds", number(row.seconds)},
                   {"images_per_s", number(row.images_per_s)}});
  }
  table.rows.push_back({text_cell("real"), percent_cell(real.val_accuracy),
                        number_cell(real.judge.fid_floor, "{:.3f}"),
                        number_cell(real.diversity.features_mean, "{:.3f}"),
                        number_cell(1.0, "{:.2f}"),
                        number_cell(real.diversity.pixels_mean, "{:.3f}"),
                        number_cell(1.0, "{:.2f}"), empty_cell()});
  table.note = fmt::format(
      "Accuracy: the share the classifier reads as the requested class. FID: Fréchet distance to "
      "the held-out {0} in {1}. Diversity: mean within-class pair distance, and its ratio to "
      "the real {0}'. The real row: the classifier's held-out accuracy, the real-vs-real FID "
      "floor and the held-out {0}' diversity.",
      item_noun(real.class_names), real.judge.feature_space);
  report.tables.push_back(std::move(table));

  nlohmann::json data = reference_json(real);
  data["report"] = "numeral eval sweep";
  data["numeral_version"] = NUMERAL_VERSION;
  data["fid_floor"] = number(real.judge.fid_floor);
  data["real_accuracy"] = number(real.val_accuracy);
  data["real_diversity"] = {{"features", number(real.diversity.features_mean)},
                            {"pixels", number(real.diversity.pixels_mean)}};
  data["rows"] = out;
  report.data = std::move(data);
  return report;
}

Image sweep_plot(const std::vector<SweepRow>& rows, const RealReference& real) {
  Series acc{"accuracy", {}, {}}, feat{"diversity ratio (features)", {}, {}},
      pix{"diversity ratio (pixels)", {}, {}}, fid{"FID", {}, {}},
      floor{"real-vs-real floor", {}, {}};
  for (const auto& row : rows) {
    const auto& res = row.result;
    acc.x.push_back(row.w), acc.y.push_back(res.accuracy.overall);
    feat.x.push_back(row.w);
    feat.y.push_back(ratio(res.diversity.features_mean, res.real_diversity.features_mean));
    pix.x.push_back(row.w);
    pix.y.push_back(ratio(res.diversity.pixels_mean, res.real_diversity.pixels_mean));
    fid.x.push_back(row.w), fid.y.push_back(res.fid.value);
    floor.x.push_back(row.w), floor.y.push_back(real.judge.fid_floor);
  }
  PlotOptions left;
  left.title = "accuracy and diversity vs guidance";
  left.x_label = "guidance weight w";
  left.y_label = "accuracy / diversity ratio";
  left.y_min = -0.02;  // room below 0 so a curve at 0 is not hidden by the frame
  double top = 1.05;
  for (const auto& s : {feat, pix}) {
    for (double v : s.y) {
      if (std::isfinite(v)) top = std::max(top, v * 1.05);
    }
  }
  left.y_max = top;
  PlotOptions right;
  right.title = "classifier-FID vs guidance";
  right.x_label = "guidance weight w";
  right.y_label = "FID";
  const Image a = plot_lines({acc, feat, pix}, left);
  const Image b = plot_lines({fid, floor}, right);
  Image out(a.width + b.width, std::max(a.height, b.height), Rgb{255, 255, 255});
  paste(out, a, 0, 0);
  paste(out, b, a.width, 0);
  return out;
}

}  // namespace numeral
