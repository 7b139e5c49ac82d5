// CLIP in LibTorch: config, both encoders, preprocessing, HF-named weights, and agreement with
// the plain-PyTorch reference of HF's CLIPModel (bench/clip_reference.py wrote the fixture).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "numeral/clip/config.h"
#include "numeral/clip/model.h"
#include "numeral/clip/preprocess.h"
#include "numeral/clip/weights.h"
#include "numeral/io/safetensors.h"
#include "test_util.h"

namespace numeral::clip {
namespace {

using test::error_of;
using test::TempDir;

const fs::path kFixture = fs::path(NUMERAL_SOURCE_DIR) / "tests/golden/clip_tiny.safetensors";

using test::contains;

// A tiny random configuration: two layers per tower, 16-pixel images in 4x4 patches.
ClipConfig tiny_config() {
  ClipConfig c;
  c.name = "tiny";
  for (TowerConfig* t :
       {static_cast<TowerConfig*>(&c.vision), static_cast<TowerConfig*>(&c.text)}) {
    t->hidden_size = 16;
    t->intermediate_size = 32;
    t->num_hidden_layers = 2;
    t->num_attention_heads = 2;
  }
  c.vision.image_size = 16;
  c.vision.patch_size = 4;
  c.text.vocab_size = 50;
  c.text.max_position_embeddings = 8;
  c.text.eos_token_id = 49;
  c.projection_dim = 12;
  return c;
}

ClipModel tiny_model(uint64_t seed = 0) {
  torch::manual_seed(seed);
  ClipModel m(tiny_config());
  m->eval();
  return m;
}

torch::Tensor ids_of(std::vector<std::vector<int64_t>> rows) {
  std::vector<torch::Tensor> out;
  for (auto& r : rows) out.push_back(torch::tensor(r, torch::kLong));
  return torch::stack(out);
}

// --- config ---------------------------------------------------------------------------------

TEST(ClipConfig, PresetsHaveOpenAIsShapes) {
  const auto b32 = clip_preset("ViT-B/32");
  EXPECT_EQ(b32.vision.num_patches(), 49);
  EXPECT_EQ(b32.text.hidden_size, 512);
  EXPECT_EQ(b32.projection_dim, 512);
  EXPECT_EQ(clip_preset("ViT-B/16").vision.num_patches(), 196);
  const auto l14 = clip_preset("ViT-L/14");
  EXPECT_EQ(l14.vision.hidden_size, 1024);
  EXPECT_EQ(l14.vision.num_hidden_layers, 24);
  EXPECT_EQ(l14.vision.num_patches(), 256);
  EXPECT_EQ(l14.projection_dim, 768);
  EXPECT_TRUE(
      contains(error_of([] { clip_preset("ViT-H/14"); }), "ViT-B/32, ViT-B/16 or ViT-L/14"));
}

TEST(ClipConfig, ReadsHfConfigJsonWithDefaultsAndOldDictSections) {
  TempDir dir;
  // The older HF layout (text_config_dict) and absent fields: HF's defaults fill them.
  write_file_atomic(dir / "config.json",
                    R"({"model_type": "clip", "projection_dim": 768,
                       "text_config_dict": {"hidden_size": 768, "num_attention_heads": 12},
                       "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24,
                                         "num_attention_heads": 16, "patch_size": 14,
                                         "intermediate_size": 4096}, "unrelated": 1})");
  const auto c = read_clip_config(dir / "config.json");
  EXPECT_EQ(c.text.hidden_size, 768);
  EXPECT_EQ(c.text.intermediate_size, 2048);  // HF's CLIPTextConfig default
  EXPECT_EQ(c.text.vocab_size, 49408);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.projection_dim, 768);
  // Round trip through numeral's writer.
  const auto again = clip_config_from_json(clip_config_to_json(c), "again");
  EXPECT_EQ(again.vision.num_hidden_layers, 24);
  EXPECT_EQ(again.text.hidden_size, 768);
}

TEST(ClipConfig, RefusesBadFiles) {
  TempDir dir;
  EXPECT_TRUE(contains(error_of([&] { read_clip_config(dir / "config.json"); }), "cannot open"));
  write_file_atomic(dir / "config.json", "{not json");
  EXPECT_TRUE(contains(error_of([&] { read_clip_config(dir / "config.json"); }), "not valid JSON"));
  write_file_atomic(dir / "config.json", R"({"model_type": "bert"})");
  EXPECT_TRUE(contains(error_of([&] { read_clip_config(dir / "config.json"); }), "not a CLIP"));
  write_file_atomic(dir / "config.json",
                    R"({"vision_config": {"hidden_size": 100, "num_attention_heads": 12}})");
  EXPECT_TRUE(contains(error_of([&] { read_clip_config(dir / "config.json"); }),
                       "hidden_size 100 is not divisible by num_attention_heads 12"));
  write_file_atomic(dir / "config.json", R"({"vision_config": {"image_size": 30}})");
  EXPECT_TRUE(
      contains(error_of([&] { read_clip_config(dir / "config.json"); }), "multiple of patch_size"));
  write_file_atomic(dir / "config.json", R"({"text_config": {"hidden_size": "wide"}})");
  EXPECT_TRUE(contains(error_of([&] { read_clip_config(dir / "config.json"); }), "wrong type"));
}

// --- encoders -------------------------------------------------------------------------------

TEST(ClipModel, ShapesOfBothTowers) {
  auto m = tiny_model();
  torch::NoGradGuard no_grad;
  const auto img = m->vision_model()->forward(torch::randn({3, 3, 16, 16}));
  EXPECT_EQ(img.last_hidden_state.sizes(), (std::vector<int64_t>{3, 17, 16}));  // class + 16
  EXPECT_EQ(img.pooled.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(m->encode_image(torch::randn({2, 3, 16, 16})).sizes(), (std::vector<int64_t>{2, 12}));
  const auto ids = ids_of({{48, 5, 6, 49, 49}, {48, 49, 49, 49, 49}});
  const auto txt = m->text_model()->forward(ids);
  EXPECT_EQ(txt.last_hidden_state.sizes(), (std::vector<int64_t>{2, 5, 16}));
  const auto t = m->encode_text(ids);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 12}));
  const auto logits = m->logits_per_image(m->encode_image(torch::randn({4, 3, 16, 16})), t);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{4, 2}));
  // |logit| <= exp(logit_scale) since they are scaled cosines.
  EXPECT_LE(logits.abs().max().item<double>(), std::exp(2.6592) + 1e-4);
}

TEST(ClipModel, RefusesWrongInputs) {
  auto m = tiny_model();
  EXPECT_TRUE(contains(error_of([&] {
                         m->encode_image(torch::randn({1, 3, 28, 28}));
                       }),
                       "expected pixel values [B, 3, 16, 16]"));
  EXPECT_TRUE(contains(error_of([&] {
                         m->encode_text(ids_of({{1, 2, 3}}));
                       }),
                       "no end-of-text token"));
  EXPECT_TRUE(contains(error_of([&] { m->encode_text(ids_of({{1, 2, 99}})); }), "[0, 50)"));
  EXPECT_TRUE(contains(error_of([&] {
                         m->encode_text(torch::full({1, 9}, 49, torch::kLong));
                       }),
                       "9 tokens, expected 1 to 8"));
}

TEST(ClipModel, CausalMaskIsZeroOnAndBelowTheDiagonal) {
  const auto mask = causal_mask(4);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const float v = mask[i][j].item<float>();
      if (j <= i)
        EXPECT_EQ(v, 0.0f);
      else
        EXPECT_TRUE(std::isinf(v) && v < 0);
    }
  }
}

TEST(ClipModel, TextPositionsSeeOnlyTheTokensBeforeThem) {
  auto m = tiny_model();
  torch::NoGradGuard no_grad;
  const auto a = m->text_model()->forward(ids_of({{48, 5, 6, 7, 49}})).last_hidden_state;
  const auto b = m->text_model()->forward(ids_of({{48, 5, 30, 31, 49}})).last_hidden_state;
  // Positions 0 and 1 are the same tokens in both: causal attention leaves them equal.
  EXPECT_TRUE(torch::allclose(a.slice(1, 0, 2), b.slice(1, 0, 2), 0, 1e-6));
  EXPECT_FALSE(torch::allclose(a.slice(1, 2, 5), b.slice(1, 2, 5), 1e-3, 1e-3));
}

TEST(ClipModel, PoolsAtTheFirstEndOfTextToken) {
  auto m = tiny_model();
  torch::NoGradGuard no_grad;
  const auto ids = ids_of({{48, 5, 49, 49, 49}, {48, 5, 6, 7, 49}});
  EXPECT_TRUE(torch::equal(m->text_model()->eos_positions(ids), torch::tensor({2, 4})));
  const auto out = m->text_model()->forward(ids);
  EXPECT_TRUE(torch::equal(out.pooled[0], out.last_hidden_state[0][2]));
  EXPECT_TRUE(torch::equal(out.pooled[1], out.last_hidden_state[1][4]));
  // Whatever follows the end token (padding) cannot change the pooled output.
  const auto padded = m->text_model()->forward(ids_of({{48, 5, 49, 3, 17}})).pooled;
  EXPECT_TRUE(torch::allclose(padded[0], out.pooled[0], 0, 1e-6));
  // HF's legacy configs (eos_token_id 2) pool at argmax(ids), as OpenAI's code does.
  auto legacy_config = tiny_config();
  legacy_config.text.eos_token_id = 2;
  TextTransformer legacy(legacy_config.text);
  EXPECT_TRUE(torch::equal(legacy->eos_positions(ids_of({{48, 5, 49, 0, 0}})), torch::tensor({2})));
}

// --- preprocessing --------------------------------------------------------------------------

TEST(ClipPreprocess, ConstantImageGivesClipsNormalisedValue) {
  PreprocessConfig c;
  c.size = 40;
  c.crop_size = 32;
  // Grey 0.2 in [-1, 1] is the 8-bit value round(1.2 * 127.5) = 153 everywhere; the resize keeps
  // a constant image constant.
  const auto out = preprocess(torch::full({2, 1, 28, 28}, 0.2), c);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  for (int ch = 0; ch < 3; ++ch) {
    const double expected = (153.0 / 255.0 - c.image_mean[ch]) / c.image_std[ch];
    EXPECT_NEAR(out.select(1, ch).min().item<double>(), expected, 1e-5);
    EXPECT_NEAR(out.select(1, ch).max().item<double>(), expected, 1e-5);
  }
  EXPECT_TRUE(contains(error_of([&] {
                         preprocess(torch::zeros({1, 2, 8, 8}), c);
                       }),
                       "[N, 1 or 3, H, W]"));
  c.crop_size = 41;
  EXPECT_TRUE(contains(error_of([&] { preprocess(torch::zeros({1, 1, 8, 8}), c); }), "crop"));
}

TEST(ClipPreprocess, CropsTheCentreOfANonSquareImage) {
  PreprocessConfig c;
  c.size = 4;
  c.crop_size = 4;
  // 4 x 8: no resize (shortest side is already 4), the crop keeps columns 2..5.
  auto x = torch::arange(8, torch::kFloat).expand({1, 1, 4, 8}) / 127.5 - 1.0;
  const auto out = preprocess(x, c);
  const double expected = (3.0 / 255.0 - c.image_mean[0]) / c.image_std[0];  // column 3
  EXPECT_NEAR(out[0][0][0][1].item<double>(), expected, 1e-5);
}

TEST(ClipPreprocess, ReadsHfPreprocessorConfig) {
  TempDir dir;
  write_file_atomic(dir / "preprocessor_config.json",
                    R"({"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336},
                       "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})");
  const auto c = read_preprocess_config(dir / "preprocessor_config.json", {});
  EXPECT_EQ(c.size, 336);
  EXPECT_EQ(c.crop_size, 336);
  EXPECT_EQ(c.image_mean[1], 0.5);
  EXPECT_EQ(read_preprocess_config(dir / "absent.json", {}).size, 224);
  write_file_atomic(dir / "bad.json", R"({"image_std": [0, 1, 1]})");
  EXPECT_TRUE(contains(error_of([&] { read_preprocess_config(dir / "bad.json", {}); }),
                       "must be positive"));
}

// --- weights --------------------------------------------------------------------------------

TEST(ClipWeights, RoundTripInHuggingFaceNames) {
  auto m = tiny_model(1);
  torch::NoGradGuard no_grad;
  const auto pixels = torch::randn({2, 3, 16, 16});
  const auto ids = ids_of({{48, 5, 6, 49}, {48, 49, 49, 49}});
  const auto img = m->encode_image(pixels), txt = m->encode_text(ids);
  for (auto dtype : {torch::kFloat, torch::kHalf, torch::kBFloat16}) {
    TempDir dir;
    save_clip_model(dir.path(), m, dtype);
    const auto file = load_safetensors(dir / "model.safetensors");
    for (const char* name :
         {"vision_model.pre_layrnorm.weight", "logit_scale",
          "vision_model.embeddings.class_embedding",
          "text_model.encoder.layers.1.self_attn.out_proj.bias", "text_projection.weight"}) {
      ASSERT_TRUE(file.tensors.count(name)) << name;
      EXPECT_EQ(file.tensors.at(name).scalar_type(), dtype) << name;
    }
    ClipModel again(read_clip_config(dir / "config.json"));
    again->eval();
    load_clip_weights(again, file, "model.safetensors");
    const double tol = dtype == torch::kFloat ? 0 : dtype == torch::kHalf ? 0.02 : 0.1;
    EXPECT_TRUE(torch::allclose(again->encode_image(pixels), img, tol, tol)) << dtype;
    EXPECT_TRUE(torch::allclose(again->encode_text(ids), txt, tol, tol)) << dtype;
  }
}

TEST(ClipWeights, EveryMalformedFileNamesTheProblem) {
  auto m = tiny_model();
  const auto good = clip_weights(m);
  auto load = [&](TensorFile f) {
    ClipModel target(tiny_config());
    load_clip_weights(target, f, "w.safetensors");
  };
  TensorFile f = good;
  f.tensors.erase("vision_model.post_layernorm.bias");
  EXPECT_TRUE(
      contains(error_of([&] { load(f); }), "tensor 'vision_model.post_layernorm.bias' is missing"));
  f = good;
  f.tensors["text_projection.weight"] = torch::zeros({12, 17});
  EXPECT_TRUE(contains(error_of([&] { load(f); }),
                       "tensor 'text_projection.weight' has shape [12, 17] but this config "
                       "expects [12, 16]"));
  f = good;
  f.tensors["logit_scale"] = torch::tensor(int64_t{3});
  EXPECT_TRUE(contains(error_of([&] { load(f); }), "tensor 'logit_scale' has dtype Long"));
  f = good;
  f.tensors["vision_model.encoder.layers.2.mlp.fc1.weight"] = torch::zeros({32, 16});
  EXPECT_TRUE(contains(error_of([&] { load(f); }),
                       "tensor 'vision_model.encoder.layers.2.mlp.fc1.weight' (shape [32, 16]) is "
                       "not part of"));
  // HF's position_ids buffers are accepted.
  f = good;
  f.tensors["text_model.embeddings.position_ids"] = torch::arange(8).view({1, 8});
  load(f);
  // A truncated file: the safetensors reader names it.
  TempDir dir;
  save_clip_model(dir.path(), m);
  const auto path = dir / "model.safetensors";
  std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, 6));
  EXPECT_FALSE(error_of([&] { load_safetensors(path); }).empty());
  write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(contains(error_of([&] { load_safetensors(path); }), "model.safetensors"));
}

// --- against the reference ------------------------------------------------------------------

struct Reference {
  TensorFile file;
  ClipModel model{nullptr};
  torch::Tensor at(const std::string& name) const { return file.tensors.at(name); }
};

Reference load_reference() {
  Reference r;
  r.file = load_safetensors(kFixture);
  const auto config =
      clip_config_from_json(nlohmann::json::parse(r.file.metadata.at("config")), "fixture");
  r.model = ClipModel(config);
  r.model->eval();
  TensorFile weights;
  for (const auto& [name, t] : r.file.tensors) {
    if (name.rfind("weights.", 0) == 0) weights.tensors[name.substr(8)] = t;
  }
  load_clip_weights(r.model, weights, kFixture.string());
  return r;
}

TEST(ClipReference, EmbeddingsMatchThePyTorchReference) {
  auto r = load_reference();
  torch::NoGradGuard no_grad;
  const auto img = r.model->encode_image(r.at("input.pixel_values"));
  const auto txt = r.model->encode_text(r.at("input.input_ids"));
  const auto logits = r.model->logits_per_image(img, txt);
  EXPECT_LT((img - r.at("output.image_embeds")).abs().max().item<double>(), 1e-4);
  EXPECT_LT((txt - r.at("output.text_embeds")).abs().max().item<double>(), 1e-4);
  EXPECT_LT((logits - r.at("output.logits_per_image")).abs().max().item<double>(), 1e-3);
}

TEST(ClipReference, PreprocessingMatchesPilBicubic) {
  const auto file = load_safetensors(kFixture);
  const auto sizes = nlohmann::json::parse(file.metadata.at("preprocess"));
  PreprocessConfig c;
  c.size = sizes.at("size").get<int64_t>();
  c.crop_size = sizes.at("crop_size").get<int64_t>();
  const auto ours = preprocess(file.tensors.at("preprocess.image"), c);
  const auto pil = file.tensors.at("preprocess.pixel_values");
  ASSERT_EQ(ours.sizes(), pil.sizes());
  // The same 8-bit pixels as PIL, so the same floats up to rounding.
  EXPECT_LT((ours - pil).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace numeral::clip
