#pragma once
// Selection by score, the authors' suggested improvement: draw K candidates for every requested
// image and keep the one a judge likes best: the digit classifier (its probability of the
// requested class) or CLIP (the CLIPScore for "A handwritten number {class}").
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>

#include "numeral/common/fields.h"
#include "numeral/eval/features.h"

namespace numeral {

enum class RankBy { kClassifier, kClip };
NUMERAL_ENUM_NAMES(RankBy, {{RankBy::kClassifier, "classifier"}, {RankBy::kClip, "clip"}});

// What `--best-of` selection asks for (sample, eval, eval clip).
struct SelectionOptions {
  int64_t best_of = 1;                   // candidates per image; 1 = no selection
  RankBy rank_by = RankBy::kClassifier;  // who ranks the candidates
  std::string rank_classifier;  // a classifier to rank with ("" = the command's --classifier)
  std::string clip_model;       // a CLIP model directory (needed by --rank-by clip)
};

template <class V>
void describe(SelectionOptions& s, V& v) {
  v("best_of", s.best_of,
    "draw this many candidates per image and keep the best by --rank-by (1 = no selection)",
    between(1, 64));
  v("rank_by", s.rank_by,
    "the judge of the candidates: the classifier's probability of the requested class, or CLIP's "
    "CLIPScore for \"A handwritten number {class}\"");
  v("rank_classifier", s.rank_classifier,
    "classifier checkpoint to rank with (default: --classifier)");
  v("clip_model", s.clip_model,
    "Hugging Face CLIP model directory (config.json, model.safetensors, vocab.json, merges.txt)");
}

// How good each image is as its requested class: images [N, C, H, W] in [-1, 1], labels [N]
// -> scores [N] (higher is better).
using ImageScorer =
    std::function<torch::Tensor(const torch::Tensor& images, const torch::Tensor& labels)>;

// Best-of-K selection as generation uses it: K candidates per image, the best kept by `scorer`.
struct Selection {
  int64_t best_of = 1;  // 1 = no selection
  ImageScorer scorer;   // needed when best_of > 1
  std::string rank_by;  // what the scorer is, for reports ("classifier runs/c", "CLIP models/c")
};

// softmax(logits)[label] of an extractor with logits (the classifier).
ImageScorer probability_scorer(FeatureExtractor& extractor);

// Keeps the best of every K consecutive candidates. Candidates arrive in order, in batches of any
// size; the K candidates of one image share its label.
class BestOf {
 public:
  BestOf(int64_t k, ImageScorer scorer);

  // Adds candidates [B, C, H, W] with labels [B]; returns the winners of the groups this batch
  // completed (images [G, C, H, W], labels [G]; G may be 0).
  std::pair<torch::Tensor, torch::Tensor> add(const torch::Tensor& images,
                                              const torch::Tensor& labels);

  int64_t k() const { return k_; }
  double scoring_seconds() const { return scoring_seconds_; }  // time spent in the scorer
  double mean_best_score() const;                              // of the winners so far
  double mean_score() const;                                   // of all candidates scored so far

 private:
  int64_t k_;
  ImageScorer scorer_;
  torch::Tensor pending_images_, pending_labels_;  // a group's first candidates
  double scoring_seconds_ = 0;
  double best_sum_ = 0, all_sum_ = 0;
  int64_t best_count_ = 0, all_count_ = 0;
};

}  // namespace numeral
