// The U-Net and its blocks: shapes, closed forms, and that the conditioning inputs matter.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/model/layers.h"
#include "numeral/model/unet.h"

namespace numeral {
namespace {

UNetConfig tiny_config() {
  UNetConfig c;
  c.channels = {8, 16};
  c.groups = 4;
  c.time_embed_dim = 16;
  c.class_embed_dim = 16;
  return c;
}

torch::Tensor labels_of(std::vector<int64_t> v) {
  return torch::tensor(v, torch::kLong);
}

TEST(SinusoidalEmbedding, MatchesScalarLoop) {
  const int64_t dim = 10, half = dim / 2;
  auto t = torch::tensor({0, 1, 7, 99}, torch::kLong);
  auto emb = sinusoidal_embedding(t, dim);
  ASSERT_EQ(emb.sizes(), (std::vector<int64_t>{4, dim}));
  for (int64_t b = 0; b < 4; ++b) {
    const double tb = t[b].item<double>();
    for (int64_t i = 0; i < half; ++i) {
      const double w = std::pow(10000.0, -static_cast<double>(i) / (half - 1));
      EXPECT_NEAR(emb[b][i].item<double>(), std::sin(tb * w), 1e-4);
      EXPECT_NEAR(emb[b][half + i].item<double>(), std::cos(tb * w), 1e-4);
    }
  }
}

TEST(OneHotLabels, NullLabelIsZeroVector) {
  auto oh = one_hot_labels(labels_of({0, 3, kNullLabel}), 4);
  EXPECT_TRUE(oh[0].equal(torch::tensor({1.f, 0.f, 0.f, 0.f})));
  EXPECT_TRUE(oh[1].equal(torch::tensor({0.f, 0.f, 0.f, 1.f})));
  EXPECT_EQ(oh[2].sum().item<float>(), 0.f);
}

TEST(Blocks, Shapes) {
  torch::manual_seed(0);
  ResBlock res(3, 8, 4);
  EXPECT_EQ(res(torch::randn({2, 3, 12, 12})).sizes(), (std::vector<int64_t>{2, 8, 12, 12}));
  DownBlock down(8, 16, 4);
  auto [h, skip] = down(torch::randn({2, 8, 12, 12}));
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{2, 16, 6, 6}));
  EXPECT_EQ(skip.sizes(), (std::vector<int64_t>{2, 16, 12, 12}));
  UpBlock up(16, 16, 8, 4);
  EXPECT_EQ(up(h, skip).sizes(), (std::vector<int64_t>{2, 8, 12, 12}));
  EmbedBlock embed(10, 32, 8);
  EXPECT_EQ(embed(torch::randn({5, 10})).sizes(), (std::vector<int64_t>{5, 8}));
  SelfAttention attention(16, 4, 4);
  auto x = torch::randn({2, 16, 4, 4});
  EXPECT_EQ(attention(x).sizes(), x.sizes());
}

struct SizeCase {
  int64_t size, channels;
  std::vector<int64_t> widths;
  bool attention;
};

class UNetShapes : public ::testing::TestWithParam<SizeCase> {};

TEST_P(UNetShapes, OutputMatchesInputForEverySize) {
  const auto& p = GetParam();
  UNetConfig c = tiny_config();
  c.image_size = p.size;
  c.image_channels = p.channels;
  c.channels = p.widths;
  c.attention = p.attention;
  UNet model(c);
  auto x = torch::randn({2, p.channels, p.size, p.size});
  ShapeTrace trace;
  auto out = model->forward(x, labels_of({0, 5}), labels_of({1, kNullLabel}), {}, &trace);
  EXPECT_EQ(out.sizes(), x.sizes());
  // Input block, one DownBlock per level transition, bottleneck, as many UpBlocks, output.
  EXPECT_EQ(trace.size(), 2 * (p.widths.size() - 1) + 3);
  EXPECT_EQ(trace.back().second, x.sizes().vec());
}

INSTANTIATE_TEST_SUITE_P(Sizes, UNetShapes,
                         ::testing::Values(SizeCase{28, 1, {8, 16}, false},
                                           SizeCase{28, 1, {8, 8, 16}, false},
                                           SizeCase{32, 3, {8, 16, 16}, true},
                                           SizeCase{64, 3, {8, 8, 16, 16}, false}));

TEST(UNet, TimeAndClassChangeTheOutput) {
  torch::manual_seed(1);
  UNet model(tiny_config());
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 1, 28, 28});
  auto base = model->forward(x, labels_of({10}), labels_of({3}));
  auto other_t = model->forward(x, labels_of({60}), labels_of({3}));
  auto other_class = model->forward(x, labels_of({10}), labels_of({7}));
  auto null_class = model->forward(x, labels_of({10}), labels_of({kNullLabel}));
  EXPECT_GT((base - other_t).abs().max().item<float>(), 1e-4);
  EXPECT_GT((base - other_class).abs().max().item<float>(), 1e-4);
  EXPECT_GT((base - null_class).abs().max().item<float>(), 1e-4);
  // Deterministic for the same inputs.
  EXPECT_TRUE(base.equal(model->forward(x, labels_of({10}), labels_of({3}))));
}

TEST(UNet, DefaultConfigParameterCount) {
  UNet model(UNetConfig{});
  // (64, 64, 128) widths: counted once here so a change to the architecture is deliberate.
  EXPECT_EQ(parameter_count(*model), 1234817);
  EXPECT_NE(model_summary(model).find("total trainable parameters: 1234817"), std::string::npos);
}

TEST(UNet, ForwardFlopsMatchAHandCount) {
  // The hand counts behind issue 13: 0.1725 GFLOP for widths 32,32,64 and 0.6877 for the default.
  UNetConfig small;
  small.channels = {32, 32, 64};
  EXPECT_EQ(forward_flops(small), 172526080);
  EXPECT_EQ(forward_flops(UNetConfig{}), 687748608);
  // One level by hand: 1 -> 8 channels at 4x4, bottleneck 8 at 2x2, time 4 and class 2 features.
  UNetConfig tiny;
  tiny.image_size = 4;
  tiny.channels = {8, 8};
  tiny.groups = 4;
  tiny.time_embed_dim = 4;
  tiny.class_embed_dim = 2;
  tiny.num_classes = 3;
  const int64_t input = 2 * 9 * 16 * (1 * 8 + 8 * 8) + 2 * 16 * 8;
  const int64_t down = 2 * 9 * 16 * (8 * 8 + 8 * 8), bottleneck = 2 * 9 * 4 * (8 * 8 + 8 * 8);
  const int64_t up = 2 * 4 * 4 * 8 * 8 + 2 * 9 * 16 * (16 * 8 + 8 * 8) + 2 * 16 * 16 * 8;
  const int64_t out = 2 * 9 * 16 * (2 * 8 * 8 + 8);
  const int64_t embed = 2 * (2 * (4 * 4 + 4 * 8) + 2 * (3 * 2 + 2 * 8));  // two injections
  EXPECT_EQ(forward_flops(tiny), input + down + bottleneck + up + out + embed);
  tiny.guidance_input = true;
  EXPECT_EQ(forward_flops(tiny),
            input + down + bottleneck + up + out + embed + 2 * 2 * (4 * 4 + 4 * 8));
}

TEST(UNetConfig, RejectsImpossibleShapes) {
  UNetConfig c;
  c.image_size = 30;  // not divisible by 4
  EXPECT_THROW(c.validate(), Error);
  c = UNetConfig{};
  c.channels = {64};
  EXPECT_THROW(c.validate(), Error);
  c = UNetConfig{};
  c.channels = {64, 60};  // 60 is not a multiple of 8 groups
  EXPECT_THROW(c.validate(), Error);
  c = UNetConfig{};
  c.attention = true;
  c.attention_heads = 3;
  EXPECT_THROW(c.validate(), Error);
}

TEST(UNet, WrongInputShapeIsAClearError) {
  UNet model(tiny_config());
  try {
    model->forward(torch::randn({1, 1, 32, 32}), labels_of({0}), labels_of({0}));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected x_t of shape [B, 1, 28, 28]"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace numeral
