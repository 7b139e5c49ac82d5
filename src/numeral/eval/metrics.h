#pragma once
// The numbers evaluation reports, as plain functions of tensors: accuracy, the Fréchet distance
// between feature sets, within-class diversity and pop-out threshold crossings. No models here.
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace numeral {

// How often predictions match the labels, overall and per class.
struct AccuracyReport {
  double overall = 0;             // correct / total
  std::vector<double> per_class;  // [K]; NaN for a class with no examples
  std::vector<int64_t> correct;   // [K]
  std::vector<int64_t> count;     // [K] examples per class
};

// Accuracy of argmax(logits) against labels. logits [N, K], labels [N] int64 in [0, K); N > 0.
AccuracyReport accuracy(const torch::Tensor& logits, const torch::Tensor& labels);

// The mean and covariance of a feature set, in float64 on the CPU.
struct FeatureStats {
  torch::Tensor mean;  // [D]
  torch::Tensor cov;   // [D, D], unbiased (divides by N - 1)
  int64_t count = 0;   // N
};

// Statistics of features [N, D]; throws numeral::Error when N < D (the covariance would be
// singular and the Fréchet distance meaningless) or N < 2. `what` names the set in the message.
FeatureStats feature_stats(const torch::Tensor& features, const char* what = "features");

// The principal square root of a symmetric positive semi-definite matrix via its
// eigendecomposition V diag(l) V^T -> V diag(sqrt(max(l, 0))) V^T. Input is symmetrised first.
torch::Tensor sqrtm_psd(const torch::Tensor& s);  // [D, D] float64

// Fréchet distance between Gaussians N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; the FID of
// Heusel et al. 2017): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in float64 with
// symmetric eigendecompositions (tiny negative eigenvalues from rounding are clamped to 0).
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// frechet_distance of the statistics of two feature sets [N1, D] and [N2, D].
double frechet_distance(const torch::Tensor& features_a, const torch::Tensor& features_b);

// Mean Euclidean distance over all unordered pairs of rows of x [N, ...] (flattened), in float64;
// NaN when N < 2.
double mean_pairwise_distance(const torch::Tensor& x);

// mean_pairwise_distance within each class: x [N, ...], labels [N] int64 in [0, num_classes)
// -> [num_classes], NaN for classes with fewer than two members.
std::vector<double> per_class_diversity(const torch::Tensor& x, const torch::Tensor& labels,
                                        int64_t num_classes);

// The mean of the finite entries (NaN when there are none).
double finite_mean(const std::vector<double>& values);

// Mean pairwise distance within each class and its mean over classes.
struct DiversityReport {
  std::vector<double> features, pixels;  // [K]: in a feature space, in pixels in [0, 1]
  double features_mean = 0, pixels_mean = 0;
};

// Feature- and pixel-space diversity of images [N, C, H, W] in [-1, 1] with their features
// [N, D] and labels [N].
DiversityReport diversity_report(const torch::Tensor& images, const torch::Tensor& features,
                                 const torch::Tensor& labels, int64_t num_classes);

// Where a curve sampled once per sampler step first exceeds `threshold`: the fraction
// index / curve.size() of the reverse process at that step; nullopt if it never does.
std::optional<double> first_crossing(const std::vector<double>& curve, double threshold);

// Where a curve settles above `threshold`: the fraction index / curve.size() of the first step
// from which every later value exceeds it; nullopt if the last value does not.
std::optional<double> settled_crossing(const std::vector<double>& curve, double threshold);

}  // namespace numeral
