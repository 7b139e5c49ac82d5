#include "numeral/eval/select.h"

#include <chrono>
#include <cmath>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {

ImageScorer probability_scorer(FeatureExtractor& extractor) {
  return [&extractor](const torch::Tensor& images, const torch::Tensor& labels) {
    const auto out = extractor.extract(images);
    NUMERAL_CHECK(out.logits.defined(), "{} has no class logits to rank by", extractor.name());
    return torch::softmax(out.logits, 1)
        .gather(1, labels.to(torch::kLong).view({-1, 1}).to(out.logits.device()))
        .squeeze(1);
  };
}

BestOf::BestOf(int64_t k, ImageScorer scorer) : k_(k), scorer_(std::move(scorer)) {
  NUMERAL_CHECK(k >= 1, "--best-of {}: expected at least 1", k);
  NUMERAL_CHECK(static_cast<bool>(scorer_), "best-of: no scorer");
}

std::pair<torch::Tensor, torch::Tensor> BestOf::add(const torch::Tensor& images,
                                                    const torch::Tensor& labels) {
  auto x = images.to(torch::kCPU);
  auto y = labels.to(torch::kCPU, torch::kLong);
  if (pending_images_.defined()) {
    x = torch::cat({pending_images_, x});
    y = torch::cat({pending_labels_, y});
  }
  const int64_t groups = x.size(0) / k_, used = groups * k_;
  pending_images_ = used < x.size(0) ? x.slice(0, used) : torch::Tensor();
  pending_labels_ = used < x.size(0) ? y.slice(0, used) : torch::Tensor();
  if (groups == 0) return {x.slice(0, 0, 0), y.slice(0, 0, 0)};
  const auto cand = x.slice(0, 0, used), cand_y = y.slice(0, 0, used);
  NUMERAL_CHECK(cand_y.view({groups, k_})
                    .eq(cand_y.view({groups, k_}).select(1, 0).unsqueeze(1))
                    .all()
                    .item<bool>(),
                "best-of: the {} candidates of an image must share its label", k_);
  const auto start = std::chrono::steady_clock::now();
  const auto scores = scorer_(cand, cand_y).to(torch::kCPU, torch::kDouble).view({groups, k_});
  scoring_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto best = std::get<0>(scores.max(1));
  const auto pick = std::get<1>(scores.max(1)) + torch::arange(groups, torch::kLong) * k_;
  best_sum_ += best.sum().item<double>();
  all_sum_ += scores.sum().item<double>();
  best_count_ += groups;
  all_count_ += used;
  return {cand.index_select(0, pick), cand_y.index_select(0, pick)};
}

double BestOf::mean_best_score() const {
  return best_count_ ? best_sum_ / static_cast<double>(best_count_) : std::nan("");
}

double BestOf::mean_score() const {
  return all_count_ ? all_sum_ / static_cast<double>(all_count_) : std::nan("");
}

}  // namespace numeral
