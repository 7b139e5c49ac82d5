#pragma once
// The judge of best-of selection, loaded from the command's options: a digit classifier or a CLIP
// model, owned here for as long as its scorer is used.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "numeral/clip/pretrained.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/select.h"

namespace numeral {

class Ranker {
 public:
  // Loads what `options` ranks by onto `device`: the classifier options.rank_classifier (else
  // `default_classifier`), or the CLIP model options.clip_model with one prompt per class name.
  // Nothing is loaded when options.best_of is 1. Throws numeral::Error naming the missing flag.
  Ranker(const SelectionOptions& options, const std::string& default_classifier,
         const std::vector<std::string>& class_names, torch::Device device);
  // The extractor refers to the model held here: a Ranker stays where it was made.
  Ranker(const Ranker&) = delete;
  Ranker& operator=(const Ranker&) = delete;

  // best_of, the scorer and what it is; the scorer refers to this Ranker.
  Selection selection();
  // Throws numeral::Error unless the ranker reads images of this size and these classes.
  void check_images(int64_t image_size, int64_t channels, int64_t num_classes) const;

 private:
  SelectionOptions options_;
  std::optional<TrainedClassifier> classifier_;
  std::optional<clip::Clip> clip_;
  std::unique_ptr<FeatureExtractor> extractor_;
  std::string what_;
};

}  // namespace numeral
