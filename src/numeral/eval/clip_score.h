#pragma once
// CLIP as a judge of digits, as the authors planned it: a feature extractor (CLIP image
// embeddings, and zero-shot logits over one prompt per class), the CLIPScore of each image for
// its requested class (Hessel et al. 2021: 2.5 * max(cos, 0)), how often CLIP prefers the "clear"
// and "handwritten" prompts to a "blurry" one, and zero-shot accuracy.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "numeral/clip/pretrained.h"
#include "numeral/eval/features.h"
#include "numeral/eval/metrics.h"
#include "numeral/eval/report.h"
#include "numeral/eval/select.h"

namespace numeral {

// The prompts; "{}" is replaced by the class name.
struct ClipPrompts {
  std::string handwritten = "A handwritten number {}";  // CLIPScore's and zero-shot's prompt
  std::string clear = "A clear, well-written digit {}";
  std::string blurry = "A blurry or unclear number";
};

// CLIP's image encoder as a FeatureExtractor: features are the projected image embeddings [N, P];
// logits are exp(logit_scale) * cos(image, "A handwritten number {class}") for every class.
class ClipExtractor final : public FeatureExtractor {
 public:
  ClipExtractor(clip::Clip& clip, std::vector<std::string> class_names, ClipPrompts prompts = {});

  std::string name() const override;
  std::string feature_space() const override;
  int64_t feature_dim() const override { return clip_.config.projection_dim; }
  ExtractedFeatures extract(const torch::Tensor& images) override;

  clip::Clip& clip() { return clip_; }
  const ClipPrompts& prompts() const { return prompts_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // The normalised text embeddings of the class prompts [K, P] and of one prompt [P].
  const torch::Tensor& class_text() const { return class_text_; }
  torch::Tensor text(const std::string& prompt);

 private:
  clip::Clip& clip_;
  std::vector<std::string> class_names_;
  ClipPrompts prompts_;
  torch::Tensor class_text_;  // [K, P], unit norm
};

// What CLIP says about a labelled image set.
struct ClipScores {
  int64_t images = 0;
  double score = 0;                     // mean CLIPScore for the requested class
  std::vector<double> score_per_class;  // [K], NaN for a class with no images
  double prefer_clear = 0;              // share with cos(clear prompt) > cos(blurry prompt)
  double prefer_handwritten = 0;        // share with cos(handwritten prompt) > cos(blurry prompt)
  std::vector<double> prefer_clear_per_class;  // [K]
  AccuracyReport zero_shot;                    // argmax over the K handwritten prompts
};

// CLIPScore, preferences and zero-shot accuracy of images with their requested labels, from
// their features (ClipExtractor::extract).
ClipScores clip_scores(ClipExtractor& clip, const ExtractedFeatures& features,
                       const torch::Tensor& labels);

// The CLIPScore of every image for its requested class: 2.5 * max(cos, 0). [N]
torch::Tensor clip_score_of(ClipExtractor& clip, const ExtractedFeatures& features,
                            const torch::Tensor& labels);

// A scorer for best-of selection: the CLIPScore of each image for its requested class.
ImageScorer clip_scorer(ClipExtractor& clip);

// The `numeral eval clip` report: generated against real digits (CLIPScore, prompt preferences,
// zero-shot accuracy, CLIP-FID with its real-vs-real floor), then per class; `facts` first.
Report clip_report(const ClipScores& generated, const ClipScores& real, const FidResult& fid,
                   const std::vector<std::string>& class_names, const ClipPrompts& prompts,
                   std::vector<std::pair<std::string, std::string>> facts = {});

}  // namespace numeral
