#pragma once
// Judging a diffusion model's digits against real held-out digits through the classifier:
// conditional accuracy, classifier-FID (with the real-vs-real floor), CAS and within-class
// diversity; a guidance sweep over several w; the Reports `numeral eval` and `eval sweep` write.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "numeral/eval/cas.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/features.h"
#include "numeral/eval/metrics.h"
#include "numeral/eval/reference.h"
#include "numeral/eval/report.h"
#include "numeral/eval/samples.h"
#include "numeral/io/image.h"

namespace numeral {

// What evaluate_samples computes besides accuracy, FID and diversity.
struct EvalOptions {
  bool cas = true;         // train fresh classifiers for CAS (the slow part)
  int64_t cas_epochs = 0;  // epochs of those classifiers; 0 = the judge classifier's recipe
  uint64_t seed = 0;       // seeds the CAS classifiers and the real baseline subset
  std::function<void(const std::string&)> print;  // progress lines; null = silent
};

// Everything `numeral eval` reports about one sample set.
// One source of a mixed dataset, judged on its classes alone.
struct PartEval {
  std::string name;
  int64_t samples = 0;  // generated images asked to be of its classes
  double accuracy = 0;  // of those, the share the classifier reads as the class asked for
  double real_accuracy = 0;
  FidResult fid;  // against its held-out images; the floor against its floor-set images
};

struct EvalResult {
  int64_t samples = 0;
  AccuracyReport accuracy;
  FidResult fid;  // in the classifier's feature space
  DiversityReport diversity, real_diversity;
  std::optional<CasReport> cas;
  std::vector<PartEval> parts;  // per source, when the data is a mix of several
};

// Evaluates `samples` against `real` through `classifier`, which must be the reference's judge.
EvalResult evaluate_samples(TrainedClassifier& classifier, const RealReference& real,
                            const SampleSet& samples, const EvalOptions& options);

// Facts a caller adds to a report: ("checkpoint", "runs/x/checkpoint.safetensors"), ...
using ReportFacts = std::vector<std::pair<std::string, std::string>>;

// The `numeral eval` report: facts (the samples, the reference, the judge, then `facts`), the
// metrics as generated vs real with what they mean, the per-class table; every number in data.
Report eval_report(const EvalResult& result, const RealReference& real, const SampleSet& samples,
                   ReportFacts facts = {});

// What best-of-K selection buys and costs: accuracy, FID, diversity and time of the plain samples
// (`plain`, best of 1) beside the selected ones, from the same model and sampler settings.
ReportTable selection_table(const EvalResult& plain, const SampleSet& plain_samples,
                            const EvalResult& selected, const SampleSet& selected_samples);

// One row of a guidance sweep.
struct SweepRow {
  double w = 0;
  EvalResult result;
  double seconds = 0, images_per_s = 0;
};

// The `eval sweep` report: one row per w and the real row (held-out accuracy, FID floor, real
// diversity); facts are the reference, the judge, then `facts`.
Report sweep_report(const std::vector<SweepRow>& rows, const RealReference& real,
                    ReportFacts facts = {});

// Accuracy and diversity ratio against w beside FID against w (with the floor).
Image sweep_plot(const std::vector<SweepRow>& rows, const RealReference& real);

}  // namespace numeral
