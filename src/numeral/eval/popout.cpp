#include "numeral/eval/popout.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/eval/metrics.h"
#include "numeral/eval/samples.h"
#include "numeral/inference/pipeline.h"
#include "numeral/io/plot.h"

namespace numeral {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// "p50", "p90", "p50_settled", ...: the report's keys for a threshold.
std::string threshold_key(double threshold, bool settled) {
  return fmt::format("p{:g}{}", std::round(threshold * 100.0), settled ? "_settled" : "");
}

// The table columns: (key, header) for every threshold, first crossings then settled ones.
std::vector<std::pair<std::string, std::string>> popout_columns() {
  std::vector<std::pair<std::string, std::string>> columns;
  for (const bool settled : {false, true}) {
    for (double t : kPopoutThresholds) {
      columns.emplace_back(threshold_key(t, settled),
                           fmt::format("{} > {:g}", settled ? "stays" : "first", t));
    }
  }
  return columns;
}

}  // namespace

std::vector<double> popout_fractions(int64_t steps) {
  std::vector<double> x;
  for (int64_t i = 0; i < steps; ++i) x.push_back(static_cast<double>(i) / steps);
  return x;
}

std::vector<std::vector<std::optional<double>>> popout_crossings(
    const std::vector<std::vector<double>>& curves, const std::vector<double>& thresholds,
    bool settled) {
  std::vector<std::vector<std::optional<double>>> out;
  for (const auto& curve : curves) {
    auto& row = out.emplace_back();
    for (double threshold : thresholds) {
      row.push_back(settled ? settled_crossing(curve, threshold)
                            : first_crossing(curve, threshold));
    }
  }
  return out;
}

PopoutResult popout(const TrainedModel& model, DigitClassifier& classifier, int64_t per_class,
                    const GenerateOptions& requested) {
  const auto& cfg = model.config.model;
  NUMERAL_CHECK(per_class >= 1, "--per-class {}: expected at least 1", per_class);
  NUMERAL_CHECK(cfg.image_size == classifier->config().image_size &&
                    cfg.image_channels == classifier->config().image_channels,
                "{} makes {}x{}x{} images but the classifier reads {}x{}x{}", model.path.string(),
                cfg.image_size, cfg.image_size, cfg.image_channels, classifier->config().image_size,
                classifier->config().image_size, classifier->config().image_channels);
  const Pipeline pipeline(model, execution_of(requested));
  const GenerateRequest request = pipeline.resolve(request_of(requested));
  const int64_t batch_size = pipeline.execution().batch_size;
  const auto start = std::chrono::steady_clock::now();
  const int64_t k = cfg.num_classes, n = per_class * k;
  const int64_t steps = request.sampler.resolved_steps(model.diffusion->T());
  const auto labels = balanced_labels(n, k);

  PopoutResult r;
  r.steps = steps;
  r.per_class = per_class;
  r.timesteps.assign(steps, -1);
  // The strip: x0 estimates of the first image of each class (batch 0 holds one of each when
  // batch_size >= K) at 0%, 10%, ..., 100% of the way.
  std::map<int64_t, size_t> strip_columns;  // step index -> column
  for (int i = 0; i <= 10; ++i) {
    const auto index =
        static_cast<int64_t>(std::llround(i / 10.0 * static_cast<double>(steps - 1)));
    if (strip_columns.emplace(index, strip_columns.size()).second) {
      r.strip_fractions.push_back(static_cast<double>(index) / steps);
    }
  }
  const bool want_strip = batch_size >= k;
  std::vector<torch::Tensor> strip(strip_columns.size());

  auto sums = torch::zeros({steps, k}, torch::kDouble);
  // The trajectories of the images generate() makes for these labels, watched step by step.
  GenerateObserver observer;
  observer.on_step = [&](const StepEvent& e) {
    const SamplerStep& s = e.step;
    NUMERAL_CHECK(s.index >= 0 && s.index < steps, "popout: the sampler reported step {} of {}",
                  s.index, steps);
    const auto y_cpu = labels.slice(0, e.start, e.start + s.x0.size(0));
    const auto x0 = s.x0.clamp(-1.0, 1.0);
    const auto probs = torch::softmax(classify(classifier, x0).logits.to(torch::kDouble), 1);
    const auto p = probs.gather(1, y_cpu.unsqueeze(1)).squeeze(1);  // [B]
    sums[s.index].index_add_(0, y_cpu, p);
    r.timesteps[s.index] = s.t;
    const auto column = strip_columns.find(s.index);
    if (e.batch == 0 && want_strip && column != strip_columns.end()) {
      strip[column->second] = x0.slice(0, 0, k).to(torch::kCPU);
    }
  };
  pipeline.generate_labels(labels, request, observer);
  const auto counts = torch::bincount(labels, {}, k).to(torch::kDouble);
  const auto curves = (sums / counts.unsqueeze(0)).t().contiguous();  // [K, steps]
  for (int64_t c = 0; c < k; ++c) {
    const auto row = curves[c];
    r.curves.emplace_back(row.data_ptr<double>(), row.data_ptr<double>() + steps);
  }
  r.crossings = popout_crossings(r.curves, kPopoutThresholds);
  r.settled = popout_crossings(r.curves, kPopoutThresholds, /*settled=*/true);
  if (want_strip && !strip.empty() && strip.front().defined()) {
    r.strip = torch::stack(strip, 1);  // [K, S, C, H, W]
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

Report popout_report(const PopoutResult& r, const std::vector<std::string>& class_names,
                     std::vector<std::pair<std::string, std::string>> facts) {
  Report report;
  report.title = "numeral eval popout";
  report.facts = std::move(facts);
  report.facts.emplace_back(
      "trajectories", fmt::format("{} per digit, {} sampler steps each", r.per_class, r.steps));
  auto crossing_cell = [](std::optional<double> x) {
    return x && std::isfinite(*x) ? percent_cell(*x, 0) : empty_cell("never");
  };
  ReportTable table;
  table.title = "When each digit pops out";
  table.columns = {"digit"};
  for (const auto& [key, header] : popout_columns()) table.columns.push_back(header);
  table.columns.push_back("final p");
  nlohmann::json digits = nlohmann::json::array();
  std::map<std::string, std::vector<double>> by_key;
  for (size_t c = 0; c < r.curves.size(); ++c) {
    const std::string name = c < class_names.size() ? class_names[c] : std::to_string(c);
    const double final_p = r.curves[c].empty() ? kNaN : r.curves[c].back();
    std::vector<ReportCell> row = {text_cell(name)};
    nlohmann::json d = {
        {"class", name},
        {"final", std::isfinite(final_p) ? nlohmann::json(final_p) : nlohmann::json()},
        {"curve", r.curves[c]}};
    for (const bool settled : {false, true}) {
      for (size_t t = 0; t < kPopoutThresholds.size(); ++t) {
        const auto& x = settled ? r.settled[c][t] : r.crossings[c][t];
        const std::string key = threshold_key(kPopoutThresholds[t], settled);
        d[key] = x ? nlohmann::json(*x) : nlohmann::json();
        by_key[key].push_back(x ? *x : kNaN);
        row.push_back(crossing_cell(x));
      }
    }
    row.push_back(number_cell(final_p, "{:.3f}"));
    table.rows.push_back(std::move(row));
    digits.push_back(d);
  }
  std::vector<ReportCell> mean_row = {text_cell("mean")};
  nlohmann::json mean = nlohmann::json::object();
  for (const auto& [key, header] : popout_columns()) {
    const double m = finite_mean(by_key[key]);
    mean[key] = std::isfinite(m) ? nlohmann::json(m) : nlohmann::json();
    mean_row.push_back(crossing_cell(m));
  }
  mean_row.push_back(empty_cell());
  table.rows.push_back(std::move(mean_row));
  table.note = fmt::format(
      "At every step of the reverse process the classifier reads the model's estimate of x0. "
      "The table gives the step (as step index / {} steps, 0% = pure noise) at which its mean "
      "probability of the requested digit over {} trajectories first exceeds each threshold, and "
      "the step from which it stays above it (a classifier that reads noise as one digit makes "
      "that digit's first crossing early, not its settled one).",
      r.steps, r.per_class);
  report.tables.push_back(std::move(table));

  report.data = {
      {"report", "numeral eval popout"},
      {"numeral_version", NUMERAL_VERSION},
      {"steps", r.steps},
      {"per_class", r.per_class},
      {"seconds", r.seconds},
      {"thresholds", kPopoutThresholds},
      {"fractions", popout_fractions(r.steps)},
      {"timesteps", r.timesteps},
      {"x_axis", "step index / steps of the reverse process (0 = pure noise)"},
      {"y_axis", "classifier probability of the requested digit for the model's x0 estimate"},
      {"keys",
       {{"pNN", "first step where the mean probability exceeds NN%"},
        {"pNN_settled", "first step from which it stays above NN%"}}},
      {"digits", digits},
      {"mean", mean}};
  return report;
}

Image popout_plot(const PopoutResult& r, const std::vector<std::string>& class_names) {
  std::vector<Series> series;
  const auto x = popout_fractions(r.steps);
  for (size_t c = 0; c < r.curves.size(); ++c) {
    series.push_back({c < class_names.size() ? class_names[c] : std::to_string(c), x, r.curves[c]});
  }
  PlotOptions options;
  options.title = "when digits pop out: p(requested digit | x0 estimate)";
  options.x_label = "fraction of the reverse process (step / steps)";
  options.y_label = "classifier probability";
  // A little room around [0, 1], so curves at 0 or 1 are not hidden by the frame.
  options.y_min = -0.02;
  options.y_max = 1.02;
  return plot_lines(series, options);
}

Image popout_strip(const PopoutResult& r, const std::vector<std::string>& class_names) {
  NUMERAL_CHECK(r.strip.defined(), "popout_strip: no x0 estimates were recorded");
  const int64_t k = r.strip.size(0), s = r.strip.size(1);
  const int scale = 2, padding = 2, text_scale = 2;
  const int tile = static_cast<int>(r.strip.size(3)) * scale;
  const Image grid = make_grid(r.strip.flatten(0, 1), static_cast<int>(s), padding, scale);
  // A header band with each column's fraction centred above it.
  const int header = text_height("0%", text_scale) + 2 * padding;
  Image framed(grid.width, grid.height + header, grid.channels);
  paste(framed, grid, 0, header);
  for (int64_t c = 0; c < s; ++c) {
    const std::string caption = fmt::format("{:.0f}%", 100 * r.strip_fractions[c]);
    const int centre = padding + static_cast<int>(c) * (tile + padding) + tile / 2;
    draw_text(framed, centre - text_width(caption, text_scale) / 2, padding, caption, 0,
              text_scale);
  }
  std::vector<std::string> rows;
  for (int64_t c = 0; c < k; ++c) {
    rows.push_back(c < static_cast<int64_t>(class_names.size()) ? class_names[c]
                                                                : std::to_string(c));
  }
  return add_title(label_rows(framed, rows, tile + padding, header + padding / 2),
                   "x0 estimate along the reverse process (step / steps)");
}

}  // namespace numeral
