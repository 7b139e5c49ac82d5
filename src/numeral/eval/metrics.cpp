#include "numeral/eval/metrics.h"

#include <cmath>
#include <limits>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

AccuracyReport accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  NUMERAL_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0) &&
                    logits.size(0) > 0,
                "accuracy: expected logits [N, K] and labels [N] with N > 0, got {} and {}",
                logits.sizes(), labels.sizes());
  const int64_t k = logits.size(1);
  const auto y = labels.to(torch::kCPU, torch::kLong);
  NUMERAL_CHECK(y.min().item<int64_t>() >= 0 && y.max().item<int64_t>() < k,
                "accuracy: labels must lie in [0, {}), got [{}, {}]", k, y.min().item<int64_t>(),
                y.max().item<int64_t>());
  const auto hit = logits.to(torch::kCPU).argmax(1).eq(y).to(torch::kLong);
  const auto correct = torch::zeros({k}, torch::kLong).index_add_(0, y, hit);
  const auto count = torch::bincount(y, {}, k);
  AccuracyReport r;
  r.overall = hit.sum().item<double>() / static_cast<double>(y.size(0));
  for (int64_t c = 0; c < k; ++c) {
    r.correct.push_back(correct[c].item<int64_t>());
    r.count.push_back(count[c].item<int64_t>());
    r.per_class.push_back(r.count.back() > 0 ? static_cast<double>(r.correct.back()) /
                                                   static_cast<double>(r.count.back())
                                             : kNaN);
  }
  return r;
}

FeatureStats feature_stats(const torch::Tensor& features, const char* what) {
  NUMERAL_CHECK(features.dim() == 2, "feature_stats: expected {} as [N, D], got {}", what,
                features.sizes());
  const int64_t n = features.size(0), d = features.size(1);
  NUMERAL_CHECK(n >= d && n >= 2,
                "Fréchet distance: {} has {} samples but the features have {} dimensions; the "
                "covariance needs at least as many samples as dimensions (pass --samples {} or "
                "more)",
                what, n, d, std::max<int64_t>(d, 2));
  const auto x = features.to(torch::kCPU, torch::kDouble);
  FeatureStats s;
  s.count = n;
  s.mean = x.mean(0);
  const auto centred = x - s.mean;
  s.cov = centred.t().mm(centred) / static_cast<double>(n - 1);
  return s;
}

torch::Tensor sqrtm_psd(const torch::Tensor& s) {
  NUMERAL_CHECK(s.dim() == 2 && s.size(0) == s.size(1),
                "sqrtm_psd: expected a square matrix, got {}", s.sizes());
  const auto m = s.to(torch::kCPU, torch::kDouble);
  const auto sym = (m + m.t()) * 0.5;
  auto [eigenvalues, eigenvectors] = torch::linalg_eigh(sym, "L");
  const auto root = eigenvalues.clamp_min(0.0).sqrt();
  return (eigenvectors * root.unsqueeze(0)).mm(eigenvectors.t());
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  NUMERAL_CHECK(a.mean.defined() && b.mean.defined() && a.mean.sizes() == b.mean.sizes(),
                "frechet_distance: feature dimensions differ ({} vs {})",
                a.mean.defined() ? a.mean.size(0) : 0, b.mean.defined() ? b.mean.size(0) : 0);
  const double mean_term = (a.mean - b.mean).pow(2).sum().item<double>();
  // Tr((S1^1/2 S2 S1^1/2)^1/2) = sum of sqrt of the eigenvalues of the symmetric product.
  const auto root_a = sqrtm_psd(a.cov);
  auto product = root_a.mm(b.cov).mm(root_a);
  product = (product + product.t()) * 0.5;
  const auto eigenvalues = torch::linalg_eigh(product, "L");
  const double cross = std::get<0>(eigenvalues).clamp_min(0.0).sqrt().sum().item<double>();
  const double fid =
      mean_term + a.cov.trace().item<double>() + b.cov.trace().item<double>() - 2.0 * cross;
  // Rounding can leave a tiny negative value for identical sets.
  return std::max(0.0, fid);
}

double frechet_distance(const torch::Tensor& features_a, const torch::Tensor& features_b) {
  return frechet_distance(feature_stats(features_a, "the first set"),
                          feature_stats(features_b, "the second set"));
}

double mean_pairwise_distance(const torch::Tensor& x) {
  NUMERAL_CHECK(x.dim() >= 1, "mean_pairwise_distance: expected [N, ...], got a scalar");
  const int64_t n = x.size(0);
  if (n < 2) return kNaN;
  const auto rows = x.reshape({n, -1}).to(torch::kCPU, torch::kDouble);
  const auto sq = rows.pow(2).sum(1);  // [N]
  // |a - b|^2 = |a|^2 + |b|^2 - 2 a.b in row blocks (one matrix product each, O(block * N)
  // memory). Squared distances below the rounding error of that sum (relative 1e-12) are exactly
  // 0, so identical rows are at distance 0. The sum over all ordered pairs counts each twice.
  constexpr int64_t kBlock = 512;
  double sum = 0;
  for (int64_t i = 0; i < n; i += kBlock) {
    const auto block = rows.slice(0, i, i + kBlock);
    const auto sq_block = sq.slice(0, i, i + kBlock).unsqueeze(1);
    const auto scale = sq_block + sq.unsqueeze(0);
    auto d2 = scale - 2.0 * block.mm(rows.t());
    d2 = d2.masked_fill(d2.le(scale * 1e-12), 0.0);
    sum += d2.sqrt().sum().item<double>();
  }
  return sum / (static_cast<double>(n) * static_cast<double>(n - 1));
}

std::vector<double> per_class_diversity(const torch::Tensor& x, const torch::Tensor& labels,
                                        int64_t num_classes) {
  NUMERAL_CHECK(labels.dim() == 1 && x.dim() >= 1 && x.size(0) == labels.size(0),
                "per_class_diversity: expected x [N, ...] and labels [N], got {} and {}", x.sizes(),
                labels.sizes());
  const auto y = labels.to(torch::kCPU, torch::kLong);
  const auto xc = x.to(torch::kCPU);
  std::vector<double> out;
  for (int64_t c = 0; c < num_classes; ++c) {
    const auto idx = y.eq(c).nonzero().reshape({-1});
    out.push_back(mean_pairwise_distance(xc.index_select(0, idx)));
  }
  return out;
}

double finite_mean(const std::vector<double>& values) {
  double sum = 0;
  int64_t n = 0;
  for (double v : values) {
    if (std::isfinite(v)) sum += v, ++n;
  }
  return n > 0 ? sum / static_cast<double>(n) : kNaN;
}

DiversityReport diversity_report(const torch::Tensor& images, const torch::Tensor& features,
                                 const torch::Tensor& labels, int64_t num_classes) {
  DiversityReport d;
  d.features = per_class_diversity(features, labels, num_classes);
  d.pixels = per_class_diversity((images.to(torch::kCPU) + 1.0) * 0.5, labels, num_classes);
  d.features_mean = finite_mean(d.features);
  d.pixels_mean = finite_mean(d.pixels);
  return d;
}

std::optional<double> first_crossing(const std::vector<double>& curve, double threshold) {
  for (size_t i = 0; i < curve.size(); ++i) {
    if (curve[i] > threshold) return static_cast<double>(i) / static_cast<double>(curve.size());
  }
  return std::nullopt;
}

std::optional<double> settled_crossing(const std::vector<double>& curve, double threshold) {
  size_t i = curve.size();
  while (i > 0 && curve[i - 1] > threshold) --i;
  if (i == curve.size()) return std::nullopt;
  return static_cast<double>(i) / static_cast<double>(curve.size());
}

}  // namespace numeral
