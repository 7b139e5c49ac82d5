#include "numeral/eval/ranker.h"

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/eval/clip_score.h"

namespace numeral {

Ranker::Ranker(const SelectionOptions& options, const std::string& default_classifier,
               const std::vector<std::string>& class_names, torch::Device device)
    : options_(options) {
  NUMERAL_CHECK(options.best_of >= 1, "--best-of {}: expected at least 1", options.best_of);
  if (options.best_of == 1) return;
  if (options.rank_by == RankBy::kClip) {
    NUMERAL_CHECK(!options.clip_model.empty(),
                  "--rank-by clip needs --clip-model DIR (a Hugging Face CLIP model directory)");
    clip_.emplace(clip::load_clip(options.clip_model, device));
    extractor_ = std::make_unique<ClipExtractor>(*clip_, class_names);
    what_ = fmt::format("CLIPScore of CLIP {}", options.clip_model);
    return;
  }
  const std::string path =
      options.rank_classifier.empty() ? default_classifier : options.rank_classifier;
  NUMERAL_CHECK(!path.empty(),
                "--rank-by classifier needs --rank-classifier CLF: a digit classifier from "
                "`numeral classifier train`");
  classifier_.emplace(load_classifier(path, device));
  extractor_ = std::make_unique<ClassifierExtractor>(*classifier_);
  what_ = fmt::format("classifier {}", classifier_->path.string());
}

Selection Ranker::selection() {
  Selection s;
  s.best_of = options_.best_of;
  if (s.best_of == 1) return s;
  s.rank_by = what_;
  if (clip_) {
    s.scorer = clip_scorer(static_cast<ClipExtractor&>(*extractor_));
  } else {
    s.scorer = probability_scorer(*extractor_);
  }
  return s;
}

void Ranker::check_images(int64_t image_size, int64_t channels, int64_t num_classes) const {
  if (!classifier_) return;  // CLIP reads any size and 1 or 3 channels
  const auto& c = classifier_->config;
  NUMERAL_CHECK(
      c.image_size == image_size && c.image_channels == channels && c.num_classes >= num_classes,
      "--rank-by classifier: {} reads {}x{}x{} images of {} classes, the model makes "
      "{}x{}x{} of {}",
      classifier_->path.string(), c.image_size, c.image_size, c.image_channels, c.num_classes,
      image_size, image_size, channels, num_classes);
}

}  // namespace numeral
