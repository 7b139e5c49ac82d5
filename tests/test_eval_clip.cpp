// CLIP as a judge and selection by score (src/numeral/eval: clip_score, select, ranker): the
// metrics against their definitions on a tiny random CLIP, best-of-K selection on hand-made
// scores and through generation, the report, every bad input, and the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "numeral/clip/pretrained.h"
#include "numeral/data/idx.h"
#include "numeral/eval/clip_score.h"
#include "numeral/eval/ranker.h"
#include "numeral/eval/samples.h"
#include "numeral/eval/select.h"
#include "numeral/inference/pipeline.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

namespace F = torch::nn::functional;

std::vector<std::string> digit_names() {
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  return names;
}

// A tiny random CLIP written once per test process.
const fs::path& tiny_clip_dir() {
  static const TempDir dir;
  static const bool written = (clip::write_tiny_random_clip(dir / "clip", 3), true);
  (void)written;
  static const fs::path path = dir / "clip";
  return path;
}

// Scores each candidate by its mean pixel: the brightest of every K wins.
torch::Tensor brightness(const torch::Tensor& images, const torch::Tensor& /*labels*/) {
  return images.flatten(1).mean(1);
}

TEST(BestOf, KeepsTheBestOfEachGroupAcrossBatches) {
  // 4 images, 3 candidates each; candidate i is a constant image of value v[i].
  const std::vector<double> v = {0.1,      0.9, 0.3, /**/ 0.5, 0.2, 0.4, /**/ -1, -0.5, -0.7,
                                 /**/ 0.0, 0.0, 0.8};
  auto images =
      torch::tensor(v, torch::kDouble).view({12, 1, 1, 1}).expand({12, 1, 2, 2}).contiguous();
  const auto labels = torch::tensor({7, 7, 7, 1, 1, 1, 4, 4, 4, 0, 0, 0}, torch::kLong);
  BestOf best(3, brightness);
  std::vector<torch::Tensor> kept, kept_labels;
  // Batches of 5 split groups: the first batch completes one group and holds two candidates.
  for (int64_t start = 0; start < 12; start += 5) {
    const int64_t end = std::min<int64_t>(start + 5, 12);
    auto [x, y] = best.add(images.slice(0, start, end), labels.slice(0, start, end));
    EXPECT_EQ(x.size(0), y.size(0));
    kept.push_back(x), kept_labels.push_back(y);
  }
  EXPECT_EQ(kept[0].size(0), 1);  // images 0..4: one group complete
  const auto x = torch::cat(kept), y = torch::cat(kept_labels);
  ASSERT_EQ(x.size(0), 4);
  const std::vector<double> expected = {0.9, 0.5, -0.5, 0.8};
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(x[i][0][0][0].item<double>(), expected[i]);
  EXPECT_TRUE(torch::equal(y, torch::tensor({7, 1, 4, 0}, torch::kLong)));
  EXPECT_NEAR(best.mean_best_score(), (0.9 + 0.5 - 0.5 + 0.8) / 4, 1e-9);
  double all = 0;
  for (double value : v) all += value;
  EXPECT_NEAR(best.mean_score(), all / 12, 1e-9);
}

TEST(BestOf, RefusesMixedLabelsAndBadK) {
  EXPECT_TRUE(contains(error_of([] { BestOf(0, brightness); }), "--best-of 0"));
  BestOf best(2, brightness);
  const auto message = error_of([&] {
    best.add(torch::zeros({2, 1, 2, 2}), torch::tensor({3, 4}, torch::kLong));
  });
  EXPECT_TRUE(contains(message, "must share its label")) << message;
}

TEST(BestOf, GenerationKeepsTheBestCandidateOfEachImage) {
  const TrainedModel m = tiny_diffusion_model();
  GenerateOptions options;
  options.sampler.name = SamplerName::ddim;
  options.sampler.steps = 3;
  options.batch_size = 64;
  Selection selection{4, brightness, "brightness"};
  const SampleSet s = generate_samples(m, 12, options, {}, selection);
  EXPECT_EQ(s.images.size(0), 12);
  EXPECT_TRUE(torch::equal(s.labels, balanced_labels(12, 10)));
  EXPECT_EQ(s.best_of, 4);
  EXPECT_TRUE(contains(describe_samples(s), "each the best of 4 by the brightness"));
  // The same candidates drawn directly: image i is the brightest of candidates 4i .. 4i+3.
  const Pipeline pipeline(m, execution_of(options));
  const auto candidates = pipeline.generate_labels(balanced_labels(12, 10).repeat_interleave(4),
                                                   pipeline.resolve(request_of(options)));
  const auto pick = std::get<1>(brightness(candidates, {}).view({12, 4}).max(1)) +
                    torch::arange(12, torch::kLong) * 4;
  EXPECT_TRUE(torch::allclose(s.images, candidates.index_select(0, pick), 0, 1e-6));
}

TEST(ClipEval, ScoresMatchTheirDefinitions) {
  clip::Clip clip = clip::load_clip(tiny_clip_dir());
  ClipExtractor extractor(clip, digit_names());
  EXPECT_EQ(extractor.feature_dim(), 32);
  torch::manual_seed(5);
  // 40 images: the FID needs at least as many as the 32 feature dimensions.
  const auto images = torch::rand({40, 1, 28, 28}) * 2 - 1;
  const auto labels = torch::arange(40, torch::kLong).remainder(10);
  const ExtractedFeatures f = extractor.extract(images);
  ASSERT_EQ(f.features.sizes(), (std::vector<int64_t>{40, 32}));
  ASSERT_EQ(f.logits.sizes(), (std::vector<int64_t>{40, 10}));
  // The definitions, from the model's own encoders.
  const auto unit = [](const torch::Tensor& x) {
    return F::normalize(x, F::NormalizeFuncOptions().dim(-1));
  };
  std::vector<std::string> prompts, clear;
  for (const auto& n : digit_names()) {
    prompts.push_back("A handwritten number " + n);
    clear.push_back("A clear, well-written digit " + n);
  }
  const auto img = unit(clip.encode_images(images));
  const auto cos = torch::matmul(img, unit(clip.encode_texts(prompts)).t());  // [40, 10]
  EXPECT_TRUE(torch::allclose(f.logits, clip.logit_scale() * cos, 1e-5, 1e-5));
  const auto score = clip_score_of(extractor, f, labels);
  const auto own = cos.gather(1, labels.view({-1, 1})).squeeze(1);
  EXPECT_TRUE(torch::allclose(score, 2.5 * own.clamp_min(0), 1e-5, 1e-6));

  const ClipScores s = clip_scores(extractor, f, labels);
  EXPECT_EQ(s.images, 40);
  EXPECT_NEAR(s.score, score.to(torch::kDouble).mean().item<double>(), 1e-6);
  EXPECT_NEAR(s.score_per_class[3],
              score.index({torch::tensor({3, 13, 23, 33})}).mean().item<double>(), 1e-6);
  const auto blurry =
      torch::matmul(img, unit(clip.encode_texts({"A blurry or unclear number"}))[0]);
  const auto clear_cos =
      torch::matmul(img, unit(clip.encode_texts(clear)).t()).gather(1, labels.view({-1, 1}));
  EXPECT_NEAR(s.prefer_clear,
              clear_cos.squeeze(1).gt(blurry).to(torch::kDouble).mean().item<double>(), 1e-12);
  EXPECT_NEAR(s.prefer_handwritten, own.gt(blurry).to(torch::kDouble).mean().item<double>(), 1e-12);
  EXPECT_NEAR(s.zero_shot.overall,
              cos.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>(), 1e-12);

  // CLIP-FID through the shared FID path: a set against itself is 0, beside its floor.
  const RealFeatures real = real_features(extractor, images, images.flip(0));
  EXPECT_NEAR(real.fid_floor, 0.0, 1e-6);  // the same images in another order
  const FidResult fid = fid_against(f, real);
  EXPECT_NEAR(fid.value, 0.0, 1e-6);
  EXPECT_TRUE(contains(fid.feature_space, "CLIP's projected image embeddings (32 dimensions)"));

  // The report: every metric a row, rendered three ways.
  const Report report = clip_report(s, s, fid, digit_names(), extractor.prompts(), {{"k", "v"}});
  const std::string text = render_text(report);
  for (const char* part :
       {"CLIPScore (\"A handwritten number {n}\")", "zero-shot accuracy",
        "CLIP-FID (40 vs 40; real = floor)", "prefers \"A clear", "CLIP reads MNIST poorly"}) {
    EXPECT_TRUE(contains(text, part)) << part << "\n" << text;
  }
  const auto json = render_json(report);
  EXPECT_EQ(json["tables"][1]["rows"].size(), 10u);
  EXPECT_NEAR(json["tables"][0]["rows"][0]["generated"].get<double>(), s.score, 1e-12);
  EXPECT_TRUE(contains(render_markdown(report), "| 9 |"));
}

TEST(ClipEval, ScorerRanksByCLIPScore) {
  clip::Clip clip = clip::load_clip(tiny_clip_dir());
  ClipExtractor extractor(clip, digit_names());
  const ImageScorer scorer = clip_scorer(extractor);
  torch::manual_seed(6);
  const auto images = torch::rand({4, 1, 28, 28}) * 2 - 1;
  const auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  EXPECT_TRUE(torch::allclose(scorer(images, labels),
                              clip_score_of(extractor, extractor.extract(images), labels)));
  EXPECT_TRUE(
      contains(error_of([&] {
                 clip_scores(extractor, extractor.extract(images), torch::tensor({0, 1, 2, 10}));
               }),
               "[0, 10)"));
}

TEST(Ranker, NamesWhatIsMissing) {
  SelectionOptions o;
  o.best_of = 2;
  o.rank_by = RankBy::kClip;
  EXPECT_TRUE(contains(error_of([&] { Ranker(o, "", digit_names(), torch::kCPU); }),
                       "--rank-by clip needs --clip-model"));
  o.rank_by = RankBy::kClassifier;
  EXPECT_TRUE(contains(error_of([&] { Ranker(o, "", digit_names(), torch::kCPU); }),
                       "--rank-by classifier needs --rank-classifier"));
  o.best_of = 1;  // no selection: nothing to load
  Ranker none(o, "", digit_names(), torch::kCPU);
  EXPECT_EQ(none.selection().best_of, 1);
}

TEST(Cli, EvalClipAndBestOfErrorsAreOneLine) {
  SKIP_WITHOUT_CLI();
  TempDir dir;
  const auto expect_error = [](const CliResult& r, const std::string& part) {
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, part)) << r.err;
  };
  expect_error(run_cli("eval clip --checkpoint x --classifier y"), "needs --clip-model DIR");
  // A directory without the files: each missing one named, and where models come from.
  fs::create_directories(dir / "empty");
  write_file_atomic(dir / "empty" / "config.json", "{}");
  const auto r = run_cli(fmt::format("eval clip --clip-model '{}' --checkpoint x --classifier y",
                                     (dir / "empty").string()));
  expect_error(r, "lacks model.safetensors, vocab.json + merges.txt");
  EXPECT_TRUE(contains(r.err, "openai/clip-vit-base-patch32")) << r.err;
  expect_error(run_cli(fmt::format("eval clip --clip-model '{}' --checkpoint x --classifier y",
                                   (dir / "none").string())),
               "does not exist");
  const std::string model = fs::path(NUMERAL_SOURCE_DIR) / "models/mnist.safetensors";
  expect_error(run_cli(fmt::format("sample --checkpoint '{}' --best-of 2", model)),
               "--rank-by classifier needs --rank-classifier");
  expect_error(run_cli(fmt::format("sample --checkpoint '{}' --best-of 2 --unconditional "
                                   "--rank-by clip --clip-model '{}'",
                                   model, tiny_clip_dir().string())),
               "drop --unconditional");
  expect_error(run_cli(fmt::format("sample --checkpoint '{}' --best-of 65", model)), "--best-of");
  expect_error(run_cli(fmt::format("sample --checkpoint '{}' --rank-by crowd", model)),
               "expected classifier or clip");
  expect_error(run_cli("eval --images a.idx --labels b.idx --classifier c --best-of 2"),
               "does not apply to --images");
}

TEST(Cli, SampleBestOfByClipExportsTheRequestedImages) {
  SKIP_WITHOUT_CLI();
  TempDir dir;
  const std::string model = fs::path(NUMERAL_SOURCE_DIR) / "models/mnist.safetensors";
  const auto r = run_cli(fmt::format(
      "sample --checkpoint '{}' --per-class 2 --sampler ddim --steps 2 --best-of 3 --rank-by clip "
      "--clip-model '{}' --idx '{}'",
      model, tiny_clip_dir().string(), (dir / "best").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "each the best of 3 candidates by the CLIPScore")) << r.out;
  EXPECT_TRUE(contains(r.out, "best of 3: mean score")) << r.out;
  const auto labels = read_idx(dir / "best-labels-idx1-ubyte");
  EXPECT_EQ(labels.size(0), 20);  // 2 per class, not 6
  EXPECT_TRUE(
      torch::equal(labels.to(torch::kLong), torch::arange(10, torch::kLong).repeat_interleave(2)));
}

}  // namespace
}  // namespace numeral
