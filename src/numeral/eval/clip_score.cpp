#include "numeral/eval/clip_score.h"

#include <cmath>
#include <limits>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {
namespace {

namespace F = torch::nn::functional;

torch::Tensor unit(const torch::Tensor& x) {
  return F::normalize(x, F::NormalizeFuncOptions().dim(-1));
}

std::string with_class(const std::string& prompt, const std::string& name) {
  return fmt::format(fmt::runtime(prompt), name);
}

// The mean of `values` [N] over each class's images: [K], NaN where a class has none.
std::vector<double> per_class_mean(const torch::Tensor& values, const torch::Tensor& labels,
                                   int64_t k) {
  std::vector<double> out(static_cast<size_t>(k), std::numeric_limits<double>::quiet_NaN());
  for (int64_t c = 0; c < k; ++c) {
    const auto mask = labels.eq(c);
    if (mask.any().item<bool>()) {
      out[static_cast<size_t>(c)] =
          values.masked_select(mask).to(torch::kDouble).mean().item<double>();
    }
  }
  return out;
}

}  // namespace

ClipExtractor::ClipExtractor(clip::Clip& clip, std::vector<std::string> class_names,
                             ClipPrompts prompts)
    : clip_(clip), class_names_(std::move(class_names)), prompts_(std::move(prompts)) {
  NUMERAL_CHECK(!class_names_.empty(), "CLIP extractor: no class names");
  std::vector<std::string> texts;
  for (const auto& name : class_names_) texts.push_back(with_class(prompts_.handwritten, name));
  class_text_ = unit(clip_.encode_texts(texts));
}

std::string ClipExtractor::name() const {
  return fmt::format("CLIP {}", clip_.dir.string());
}

std::string ClipExtractor::feature_space() const {
  return fmt::format("CLIP's projected image embeddings ({} dimensions)", feature_dim());
}

torch::Tensor ClipExtractor::text(const std::string& prompt) {
  return unit(clip_.encode_texts({prompt}))[0];
}

ExtractedFeatures ClipExtractor::extract(const torch::Tensor& images) {
  ExtractedFeatures out;
  out.features = clip_.encode_images(images);
  out.logits = clip_.logit_scale() * torch::matmul(unit(out.features), class_text_.t());
  return out;
}

torch::Tensor clip_score_of(ClipExtractor& clip, const ExtractedFeatures& features,
                            const torch::Tensor& labels) {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) == features.features.size(0),
                "CLIP scores: {} labels for {} images", labels.size(0), features.features.size(0));
  const auto cos = torch::matmul(unit(features.features), clip.class_text().t());  // [N, K]
  // Hessel et al. 2021, eq. 1: CLIP-S(c, v) = w * max(cos(c, v), 0), w = 2.5.
  return 2.5 * cos.gather(1, labels.to(torch::kLong).view({-1, 1})).squeeze(1).clamp_min(0);
}

ClipScores clip_scores(ClipExtractor& clip, const ExtractedFeatures& features,
                       const torch::Tensor& labels) {
  const int64_t k = static_cast<int64_t>(clip.class_names().size());
  NUMERAL_CHECK(
      labels.numel() > 0 && labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < k,
      "CLIP scores: labels must lie in [0, {})", k);
  ClipScores s;
  s.images = labels.size(0);
  const auto score = clip_score_of(clip, features, labels);
  s.score = score.to(torch::kDouble).mean().item<double>();
  s.score_per_class = per_class_mean(score, labels, k);
  const auto image = unit(features.features);
  const auto blurry = torch::matmul(image, clip.text(clip.prompts().blurry));  // [N]
  std::vector<std::string> clear_texts;
  for (const auto& name : clip.class_names()) {
    clear_texts.push_back(with_class(clip.prompts().clear, name));
  }
  const auto clear_text = unit(clip.clip().encode_texts(clear_texts));  // [K, P]
  const auto idx = labels.to(torch::kLong).view({-1, 1});
  const auto clear = torch::matmul(image, clear_text.t()).gather(1, idx).squeeze(1);
  const auto handwritten = torch::matmul(image, clip.class_text().t()).gather(1, idx).squeeze(1);
  const auto prefers_clear = clear.gt(blurry).to(torch::kDouble);
  s.prefer_clear = prefers_clear.mean().item<double>();
  s.prefer_handwritten = handwritten.gt(blurry).to(torch::kDouble).mean().item<double>();
  s.prefer_clear_per_class = per_class_mean(prefers_clear, labels, k);
  s.zero_shot = accuracy(features.logits, labels.to(torch::kLong));
  return s;
}

ImageScorer clip_scorer(ClipExtractor& clip) {
  return [&clip](const torch::Tensor& images, const torch::Tensor& labels) {
    return clip_score_of(clip, clip.extract(images), labels);
  };
}

Report clip_report(const ClipScores& gen, const ClipScores& real, const FidResult& fid,
                   const std::vector<std::string>& class_names, const ClipPrompts& prompts,
                   std::vector<std::pair<std::string, std::string>> facts) {
  Report r;
  r.title = "numeral eval clip";
  r.facts = std::move(facts);
  const std::string of_class = fmt::format(fmt::runtime(prompts.handwritten), "{n}");
  const std::string clear = fmt::format(fmt::runtime(prompts.clear), "{n}");
  ReportTable summary = comparison_table("CLIP on generated and real digits");
  add_comparison(summary, fmt::format("CLIPScore (\"{}\")", of_class),
                 number_cell(gen.score, "{:.4f}"), number_cell(real.score, "{:.4f}"), true);
  add_comparison(summary, fmt::format("prefers \"{}\" to \"{}\"", clear, prompts.blurry),
                 percent_cell(gen.prefer_clear, 1), percent_cell(real.prefer_clear, 1), true);
  add_comparison(summary, fmt::format("prefers \"{}\" to \"{}\"", of_class, prompts.blurry),
                 percent_cell(gen.prefer_handwritten, 1), percent_cell(real.prefer_handwritten, 1),
                 true);
  add_comparison(summary, fmt::format("zero-shot accuracy ({} prompts)", class_names.size()),
                 percent_cell(gen.zero_shot.overall), percent_cell(real.zero_shot.overall), true);
  add_comparison(summary,
                 fmt::format("CLIP-FID ({} vs {}; real = floor)", with_commas(fid.samples),
                             with_commas(fid.real)),
                 number_cell(fid.value, "{:.4g}"), number_cell(fid.floor, "{:.4g}"));
  summary.note = fmt::format(
      "CLIPScore: 2.5 * max(cos, 0) between the image and its class's prompt (Hessel et al. "
      "2021), averaged. Preference: the share of images closer to the first prompt than to the "
      "second. Zero-shot: the class whose prompt is closest. CLIP-FID: the Fréchet distance "
      "between {} of {} generated and {} held-out real digits; the floor compares two disjoint "
      "real sets of {}. CLIP reads MNIST poorly (published zero-shot accuracy about 49% for "
      "ViT-B/32), so the classifier's figures remain the primary measure.",
      fid.feature_space, fid.samples, fid.real, fid.floor_size);
  r.tables.push_back(std::move(summary));
  ReportTable per_class;
  per_class.title = "Per class";
  per_class.columns = {"class",          "CLIPScore gen",     "CLIPScore real",    "zero-shot gen",
                       "zero-shot real", "prefers clear gen", "prefers clear real"};
  for (size_t k = 0; k < class_names.size(); ++k) {
    per_class.rows.push_back(
        {text_cell(class_names[k]), number_cell(gen.score_per_class[k], "{:.4f}"),
         number_cell(real.score_per_class[k], "{:.4f}"),
         percent_cell(gen.zero_shot.per_class[k], 1), percent_cell(real.zero_shot.per_class[k], 1),
         percent_cell(gen.prefer_clear_per_class[k], 1),
         percent_cell(real.prefer_clear_per_class[k], 1)});
  }
  r.tables.push_back(std::move(per_class));
  r.data["prompts"] = {
      {"handwritten", prompts.handwritten}, {"clear", prompts.clear}, {"blurry", prompts.blurry}};
  return r;
}

}  // namespace numeral
