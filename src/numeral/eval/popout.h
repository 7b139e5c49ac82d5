#pragma once
// When does a digit "pop out" of the noise? Along the reverse trajectory, the classifier's
// probability of the requested digit for the model's running estimate of x_0, averaged per digit.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "numeral/eval/classifier.h"
#include "numeral/eval/report.h"
#include "numeral/inference/generate.h"
#include "numeral/inference/trained_model.h"
#include "numeral/io/image.h"

namespace numeral {

// The thresholds whose first crossing popout reports.
inline const std::vector<double> kPopoutThresholds = {0.5, 0.9};

// What the pop-out analysis measured.
struct PopoutResult {
  int64_t steps = 0;                        // sampler steps
  int64_t per_class = 0;                    // trajectories per digit
  std::vector<int64_t> timesteps;           // [steps] t the model was evaluated at
  std::vector<std::vector<double>> curves;  // [K][steps] mean p(requested digit | x0 estimate)
  // [K][thresholds]: first_crossing of the curve (fraction of the reverse process), if any.
  std::vector<std::vector<std::optional<double>>> crossings;
  // [K][thresholds]: settled_crossing of the curve: from where it stays above, if it does.
  std::vector<std::vector<std::optional<double>>> settled;
  std::vector<double> strip_fractions;  // [S] where the strip's columns were taken
  torch::Tensor strip;                  // [K, S, C, H, W] x0 estimates of one digit per class
  double seconds = 0;
};

// The x-axis of a curve: step index / steps for index 0 .. steps-1 (0 = pure noise).
std::vector<double> popout_fractions(int64_t steps);

// Runs per_class reverse trajectories for every digit (balanced labels, the generate() seeding)
// and records, at every step, the classifier's softmax probability of the requested digit for
// the clamped x0 estimate. Thresholds are kPopoutThresholds.
PopoutResult popout(const TrainedModel& model, DigitClassifier& classifier, int64_t per_class,
                    const GenerateOptions& options);

// Per-class first crossings of the curves for `thresholds` (the logic popout uses); with
// `settled`, where each curve settles above instead (settled_crossing).
std::vector<std::vector<std::optional<double>>> popout_crossings(
    const std::vector<std::vector<double>>& curves, const std::vector<double>& thresholds,
    bool settled = false);

// The report: a table of crossings per digit (and their mean) with what they mean; the settings,
// thresholds, timesteps and every curve in data. `facts` say what was sampled and who judged.
Report popout_report(const PopoutResult& result, const std::vector<std::string>& class_names,
                     std::vector<std::pair<std::string, std::string>> facts = {});

// The curves, one line per digit, probability against fraction of the process.
Image popout_plot(const PopoutResult& result, const std::vector<std::string>& class_names);

// A grid of x0 estimates: a row per digit, a column per strip fraction.
Image popout_strip(const PopoutResult& result, const std::vector<std::string>& class_names);

}  // namespace numeral
