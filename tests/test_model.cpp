// The U-Net and its blocks: shapes, closed forms, and that the conditioning inputs matter.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/model/fused.h"
#include "numeral/model/layers.h"
#include "numeral/model/unet.h"
#include "test_util.h"

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

// UpBlock computes its 2x2 stride-2 transposed convolution as a 1x1 convolution and a pixel
// shuffle: the same function of the same weights as ATen's conv_transpose2d, values and gradients.
TEST(Blocks, UpsampleEqualsTheTransposedConvolution) {
  torch::manual_seed(0);
  UpBlock up(6, 4, 5, 1);
  auto params = up->named_parameters();
  const auto& weight = params["up.weight"];
  const auto& bias = params["up.bias"];
  ASSERT_EQ(weight.sizes(), (std::vector<int64_t>{6, 6, 2, 2}));
  {
    torch::NoGradGuard no_grad;  // a non-zero bias, so that its placement is checked too
    bias.copy_(torch::randn_like(bias));
  }
  auto x = torch::randn({3, 6, 5, 7}, torch::requires_grad());
  auto ours = up->upsample(x);
  auto reference = torch::conv_transpose2d(x, weight, bias, /*stride=*/2);
  ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{3, 6, 10, 14}));
  EXPECT_TRUE(torch::allclose(ours, reference, 1e-5, 1e-5))
      << (ours - reference).abs().max().item<float>();
  // A hand check of one output pixel: (2i + a, 2j + b) of channel o is sum_c x[c, i, j] w[c, o, a,
  // b]
  // + bias[o].
  const int64_t o = 4, i = 3, j = 5, a = 1, b = 0;
  const float by_hand =
      (x[1].select(1, i).select(1, j) * weight.select(1, o).select(1, a).select(1, b))
          .sum()
          .item<float>() +
      bias[o].item<float>();
  EXPECT_NEAR(ours[1][o][2 * i + a][2 * j + b].item<float>(), by_hand, 1e-5);

  const auto g = torch::randn_like(ours);
  auto grads = torch::autograd::grad({ours}, {x, weight, bias}, {g});
  auto reference_grads = torch::autograd::grad({reference}, {x, weight, bias}, {g});
  for (size_t k = 0; k < grads.size(); ++k) {
    EXPECT_TRUE(torch::allclose(grads[k], reference_grads[k], 1e-4, 1e-5)) << "gradient " << k;
  }
  // Written into a view of a larger buffer (the sampling path), the same values.
  torch::NoGradGuard no_grad;
  auto buffer = torch::full({3, 10, 10, 14}, 7.f);
  up->upsample(x, buffer.narrow(1, 0, 6));
  EXPECT_TRUE(torch::allclose(buffer.narrow(1, 0, 6), reference, 1e-5, 1e-5));
  EXPECT_TRUE(buffer.narrow(1, 6, 4).eq(7.f).all().item<bool>());  // the rest untouched
}

// A GroupNorm of 12 channels in 4 groups with affine weights far from 1 and 0.
torch::nn::GroupNorm random_affine_norm() {
  torch::nn::GroupNorm norm(4, 12);
  torch::NoGradGuard no_grad;
  norm->weight.uniform_(-3, 3);
  norm->bias.uniform_(-2, 2);
  return norm;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// The fused GroupNorm + GELU (+ residual) against LibTorch's separate layers: odd sizes (the
// vector loops' tails), normalised values out to +-10 (past the erf approximation's clamp at 4),
// in place, into a channel slice of a larger buffer, and with a residual.
TEST(FusedGroupNormGelu, MatchesThePlainLayers) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  auto norm = random_affine_norm();
  const auto x = 5 * torch::randn({3, 12, 7, 5}) + 1;
  const auto residual = torch::randn({3, 12, 7, 5});
  const auto plain = torch::gelu(norm(x));
  EXPECT_GT(norm(x).abs().max().item<float>(), 6);  // the clamp's region is reached
  ASSERT_TRUE(fusable_group_norm_gelu(x));
  auto into = torch::empty_like(x);
  EXPECT_LT(max_diff(group_norm_gelu_out(into, x, norm), plain), 2e-6);
  auto in_place = x.clone();
  group_norm_gelu_out(in_place, in_place, norm, residual);
  EXPECT_LT(max_diff(in_place, plain + residual), 2e-6);
  // A [3, 20, 7, 5] buffer whose channels 8..19 receive the result; the first 8 stay as they were.
  auto buffer = torch::full({3, 20, 7, 5}, -7.0f);
  group_norm_gelu_out(buffer.narrow(1, 8, 12), x, norm, residual);
  EXPECT_LT(max_diff(buffer.narrow(1, 8, 12), plain + residual), 2e-6);
  EXPECT_TRUE(buffer.narrow(1, 0, 8).eq(-7).all().item<bool>());
  // Without affine weights, and a group's values all equal (variance 0: eps keeps it finite).
  torch::nn::GroupNorm bare(torch::nn::GroupNormOptions(2, 12).affine(false));
  auto flat = x.clone();
  flat.narrow(1, 0, 6).fill_(3);
  const auto bare_plain = torch::gelu(bare(flat));
  const auto bare_fused = group_norm_gelu_out(torch::empty_like(flat), flat, bare);
  EXPECT_LT(max_diff(bare_fused.narrow(1, 6, 6), bare_plain.narrow(1, 6, 6)), 2e-6);
  // The flat group is 0 up to the rounding of x * scale + shift at scale 1 / sqrt(eps) = 316,
  // the same form (and error, about 3e-5) as LibTorch's kernel.
  EXPECT_LT(bare_fused.narrow(1, 0, 6).abs().max().item<float>(), 1e-4);
  EXPECT_LT(bare_plain.narrow(1, 0, 6).abs().max().item<float>(), 1e-4);
}

// The channels-last kernel (sampling runs channels-last on the CPU): into another buffer, in
// place, and into a channel slice of a channels-last buffer with a residual that is itself such a
// slice; the other channels untouched. A mix of layouts is refused.
TEST(FusedGroupNormGelu, ChannelsLastMatchesThePlainLayers) {
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  auto norm = random_affine_norm();
  const auto last = torch::MemoryFormat::ChannelsLast;
  const auto x = (5 * torch::randn({3, 12, 7, 5}) + 1).contiguous(last);
  const auto plain = torch::gelu(norm(x.contiguous()));
  ASSERT_TRUE(fusable_group_norm_gelu(x));
  EXPECT_LT(max_diff(group_norm_gelu_out(torch::empty_like(x), x, norm), plain), 2e-6);
  auto in_place = x.clone();
  ASSERT_TRUE(in_place.is_contiguous(last));
  group_norm_gelu_out(in_place, in_place, norm);
  EXPECT_LT(max_diff(in_place, plain), 2e-6);
  auto buffer = torch::full({3, 20, 7, 5}, -7.0f).contiguous(last);
  const auto residual_buffer = torch::randn({3, 16, 7, 5}).contiguous(last);
  const auto residual = residual_buffer.narrow(1, 2, 12);
  ASSERT_TRUE(fusable_group_norm_gelu(buffer.narrow(1, 8, 12)));
  group_norm_gelu_out(buffer.narrow(1, 8, 12), x, norm, residual);
  EXPECT_LT(max_diff(buffer.narrow(1, 8, 12), plain + residual), 2e-6);
  EXPECT_TRUE(buffer.narrow(1, 0, 8).eq(-7).all().item<bool>());
  EXPECT_ERROR(group_norm_gelu_out(torch::empty({3, 12, 7, 5}), x, norm), "one memory layout");
}

// bfloat16 sampling: the channels-last kernel reads bfloat16 into float and writes the result
// rounded once, so it is the float32 kernel's result on the same (rounded) inputs to within
// bfloat16's half-ulp (2^-9 relative); NCHW bfloat16, and a mix of types, are not taken.
TEST(FusedGroupNormGelu, BFloat16ChannelsLastIsTheFloatKernelRounded) {
  torch::manual_seed(6);
  torch::NoGradGuard no_grad;
  auto norm = random_affine_norm();
  const auto last = torch::MemoryFormat::ChannelsLast;
  const auto x = (5 * torch::randn({3, 12, 7, 5}) + 1).to(torch::kBFloat16).contiguous(last);
  const auto residual = torch::randn({3, 12, 7, 5}).to(torch::kBFloat16).contiguous(last);
  ASSERT_TRUE(fusable_group_norm_gelu(x, residual));
  EXPECT_FALSE(fusable_group_norm_gelu(x.contiguous()));  // NCHW: float32 only
  EXPECT_FALSE(fusable_group_norm_gelu(x, residual.to(torch::kFloat)));
  const auto exact = group_norm_gelu_out(torch::empty_like(x, torch::kFloat), x.to(torch::kFloat),
                                         norm, residual.to(torch::kFloat));
  const auto out = group_norm_gelu_out(torch::empty_like(x), x, norm, residual);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(out.is_contiguous(last));
  const auto error = (out.to(torch::kFloat) - exact).abs();
  EXPECT_TRUE((error <= exact.abs() * (1.0 / 256) + 1e-6).all().item<bool>())
      << error.max().item<float>();
  EXPECT_TRUE(torch::equal(out, exact.to(torch::kBFloat16)));  // rounded to nearest, once
  // In place too.
  auto in_place = x.clone();
  group_norm_gelu_out(in_place, in_place, norm, residual);
  EXPECT_TRUE(torch::equal(in_place, out));
  EXPECT_ERROR(group_norm_gelu_out(torch::empty_like(x, torch::kFloat), x, norm),
               "x, out and the residual must be of one type");
}

// Each (sample, group) is one thread's work, so the result is the same bits on any thread count
// (`sample` promises the same images for the same seed).
TEST(FusedGroupNormGelu, TheThreadCountDoesNotChangeABit) {
  torch::manual_seed(2);
  torch::NoGradGuard no_grad;
  torch::nn::GroupNorm norm(4, 16);
  const auto x = torch::randn({6, 16, 14, 14}), residual = torch::randn({6, 16, 14, 14});
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  const auto one = group_norm_gelu_out(torch::empty_like(x), x, norm, residual);
  torch::set_num_threads(2);
  const auto two = group_norm_gelu_out(torch::empty_like(x), x, norm, residual);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two)) << (one - two).abs().max().item<float>();
}

TEST(FusedGroupNormGelu, TakesOnlyWhatItCanAndSaysWhy) {
  torch::nn::GroupNorm norm(4, 12);
  const auto x = torch::randn({2, 12, 4, 4});
  EXPECT_FALSE(fusable_group_norm_gelu(x));  // autograd on: group_norm_gelu's node instead
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(fusable_group_norm_gelu(x));
  EXPECT_FALSE(fusable_group_norm_gelu(x.to(torch::kDouble)));
  EXPECT_FALSE(fusable_group_norm_gelu(x.transpose(2, 3)));
  EXPECT_FALSE(fusable_group_norm_gelu(x.flatten(2)));
  EXPECT_TRUE(fusable_group_norm_gelu(x.narrow(1, 4, 8)));  // channels of contiguous samples
  EXPECT_ERROR(group_norm_gelu_out(torch::empty({2, 12, 4, 4}), x.transpose(2, 3), norm),
               "contiguous samples");
  EXPECT_ERROR(group_norm_gelu_out(torch::empty({2, 8, 4, 4}), x, norm), "shapes differ");
  EXPECT_ERROR(group_norm_gelu_out(x.narrow(1, 0, 8).contiguous(), x.narrow(1, 0, 8), norm),
               "8 channels for a GroupNorm of 12 channels");
}

// The training node (group_norm_gelu) against LibTorch's two layers in float64 (the closed forms
// to double rounding): values and the gradients of x, gamma and beta, with odd sizes, normalised
// values out to +-10 (past the clamps of the erf and exp approximations), a non-contiguous input
// and a non-contiguous upstream gradient. The fused node is as close as the float32 layers are.
TEST(FusedGroupNormGelu, TrainingGradientsMatchThePlainLayers) {
  torch::manual_seed(3);
  auto norm = random_affine_norm();
  const auto base = (5 * torch::randn({3, 12, 5, 7}) + 1).transpose(2, 3);  // [3, 12, 7, 5]
  // A channel slice, as a concatenation's backward hands it on. (Not a transposed one: LibTorch
  // 1.13's float32 gelu_backward returns garbage for a transposed gradient with a contiguous
  // input, up to 3.7e19; float64 is right. Training never produces such a gradient.)
  const auto upstream = torch::randn({3, 20, 7, 5}).narrow(1, 4, 12);
  const auto run = [&](torch::nn::GroupNorm n, torch::Dtype dtype, bool fused) {
    n->zero_grad();
    const auto x = base.to(dtype).clone().requires_grad_();
    const auto y = fused ? group_norm_gelu(x, n) : torch::gelu(n(x));
    if (fused) {
      EXPECT_NE(y.grad_fn()->name().find("GroupNormGelu"), std::string::npos);
    }
    y.backward(upstream.to(dtype));
    return std::vector<torch::Tensor>{y.detach().to(torch::kDouble), x.grad().to(torch::kDouble),
                                      n->weight.grad().to(torch::kDouble),
                                      n->bias.grad().to(torch::kDouble)};
  };
  auto wide = std::dynamic_pointer_cast<torch::nn::GroupNormImpl>(norm->clone());
  wide->to(torch::kDouble);
  const auto exact = run(torch::nn::GroupNorm(wide), torch::kDouble, false);
  const auto plain = run(norm, torch::kFloat, false), fused = run(norm, torch::kFloat, true);
  EXPECT_GT(exact[0].abs().max().item<double>(), 6);  // the clamps' region is reached
  const char* names[] = {"y", "dx", "dgamma", "dbeta"};
  for (size_t k = 0; k < exact.size(); ++k) {
    const double scale = std::max(1.0, exact[k].abs().max().item<double>());
    const double fused_error = (fused[k] - exact[k]).abs().max().item<double>() / scale;
    const double plain_error = (plain[k] - exact[k]).abs().max().item<double>() / scale;
    EXPECT_LT(fused_error, 2e-6) << names[k] << "; LibTorch's float32 layers: " << plain_error;
  }
  // Anything else (here float64) takes the two layers, with their own backward.
  const auto x = base.to(torch::kDouble).requires_grad_();
  EXPECT_EQ(group_norm_gelu(x, torch::nn::GroupNorm(wide)).grad_fn()->name().find("GroupNormGelu"),
            std::string::npos);
}

// Channels-last training (the U-Net trains channels-last on the CPU): the node keeps the layout
// (output and dx channels-last, no conversion to NCHW and back) and matches float64 layers as
// closely as the NCHW kernels do, for an upstream gradient in either layout (one NCHW, one a
// channel slice of a channels-last buffer, as a concatenation's backward hands it on).
TEST(FusedGroupNormGelu, ChannelsLastTrainingMatchesThePlainLayers) {
  torch::manual_seed(6);
  auto norm = random_affine_norm();
  const auto last = torch::MemoryFormat::ChannelsLast;
  const auto base = (5 * torch::randn({3, 12, 7, 5}) + 1).contiguous(last);
  auto wide = std::dynamic_pointer_cast<torch::nn::GroupNormImpl>(norm->clone());
  wide->to(torch::kDouble);
  for (const auto& upstream : {torch::randn({3, 12, 7, 5}),
                               torch::randn({3, 20, 7, 5}).contiguous(last).narrow(1, 4, 12)}) {
    norm->zero_grad();
    wide->zero_grad();
    const auto x = base.clone().requires_grad_();
    ASSERT_TRUE(x.is_contiguous(last) && !x.is_contiguous());
    const auto y = group_norm_gelu(x, norm);
    EXPECT_NE(y.grad_fn()->name().find("GroupNormGelu"), std::string::npos);
    EXPECT_TRUE(y.is_contiguous(last));
    y.backward(upstream);
    EXPECT_TRUE(x.grad().is_contiguous(last));
    const auto x64 = base.to(torch::kDouble).contiguous().requires_grad_();
    const auto y64 = torch::gelu(wide->forward(x64));
    y64.backward(upstream.to(torch::kDouble));
    const std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs = {
        {y, y64},
        {x.grad(), x64.grad()},
        {norm->weight.grad(), wide->weight.grad()},
        {norm->bias.grad(), wide->bias.grad()}};
    const char* names[] = {"y", "dx", "dgamma", "dbeta"};
    for (size_t k = 0; k < pairs.size(); ++k) {
      const auto exact = pairs[k].second.detach();
      const double scale = std::max(1.0, exact.abs().max().item<double>());
      EXPECT_LT(max_diff(pairs[k].first.detach().to(torch::kDouble), exact) / scale, 2e-6)
          << names[k];
    }
  }
}

// Each (sample, group) of the backward pass (each sample, channels-last) is one thread's work and
// the per-sample parts of the weights' gradients are summed in one order: the same bits on any
// thread count, in both layouts.
TEST(FusedGroupNormGelu, TrainingGradientsDoNotDependOnTheThreadCount) {
  torch::manual_seed(4);
  torch::nn::GroupNorm norm(4, 16);
  const auto base = torch::randn({6, 16, 14, 14}), upstream = torch::randn({6, 16, 14, 14});
  for (const auto layout : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
    const auto run = [&](int threads) {
      torch::set_num_threads(threads);
      norm->zero_grad();
      const auto x = base.clone(layout).requires_grad_();
      group_norm_gelu(x, norm).backward(upstream);
      return std::vector<torch::Tensor>{x.grad(), norm->weight.grad().clone(),
                                        norm->bias.grad().clone()};
    };
    const int threads = torch::get_num_threads();
    const auto one = run(1), two = run(2);
    torch::set_num_threads(threads);
    for (size_t k = 0; k < one.size(); ++k) EXPECT_TRUE(torch::equal(one[k], two[k])) << k;
  }
}

// A ResBlock samples on the fused path (in place, residual included) and trains on the fused
// autograd node: the same function.
TEST(FusedGroupNormGelu, ResBlockPathsAgree) {
  torch::manual_seed(1);
  for (const int64_t in : {8, 16}) {  // with and without the 1x1 shortcut
    ResBlock block(in, 16, 4);
    const auto x = torch::randn({3, in, 9, 9});
    const auto plain = block(x);
    ASSERT_TRUE(plain.requires_grad());
    torch::NoGradGuard no_grad;
    const auto fused = block(x);
    EXPECT_LT((plain.detach() - fused).abs().max().item<double>(), 1e-5) << in;
  }
}

// Without autograd the U-Net writes skip connections in place, runs the fused GroupNorm + GELU and
// (on the CPU, without attention) runs channels-last: the same function as the plain (training)
// path.
TEST(UNet, JoinedPathEqualsPlain) {
  torch::manual_seed(0);
  struct Case {
    bool student, attention;
    int64_t image_channels;
  };
  // Without attention the path runs channels-last (with one and with three image channels).
  for (const Case k : {Case{false, true, 1}, Case{true, true, 1}, Case{false, false, 1},
                       Case{true, false, 1}, Case{false, false, 3}}) {
    const bool student = k.student;
    UNetConfig c = tiny_config();
    c.channels = {8, 16, 16};
    c.image_size = 12;
    c.image_channels = k.image_channels;
    if (k.attention) c.attention_at = {12, 3};
    c.guidance_input = student;
    UNet model(c);
    // Non-zero embeddings everywhere (the guidance one starts at zero).
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->parameters()) p.add_(0.05 * torch::randn_like(p));
    }
    auto x = torch::randn({5, k.image_channels, 12, 12});
    auto t = torch::tensor({0, 10, 50, 90, 99}, torch::kLong);
    auto labels = labels_of({0, 3, kNullLabel, 9, 1});
    torch::Tensor w = student ? torch::full({5}, 0.5f) : torch::Tensor{};
    const auto plain = model->forward(x, t, labels, w);  // autograd on: concatenation
    ASSERT_TRUE(plain.requires_grad());
    torch::Tensor joined;
    {
      torch::NoGradGuard no_grad;
      joined = model->forward(x, t, labels, w);
    }
    EXPECT_FALSE(joined.requires_grad());
    EXPECT_TRUE(joined.is_contiguous());  // whatever layout ran inside
    EXPECT_TRUE(torch::allclose(plain.detach(), joined, 1e-5, 1e-6))
        << "student " << student << ", attention " << k.attention << ", " << k.image_channels
        << " channels: " << (plain.detach() - joined).abs().max().item<float>();
    EXPECT_GT(plain.abs().max().item<float>(), 1e-3);  // a real comparison, not of zeros
  }
}

// A bfloat16 input runs the network in bfloat16 (float32 weights rounded per call, embeddings in
// float32), channels-last or NCHW, with or without attention: within bfloat16's rounding of the
// float32 network (a relative RMS error under 2%), and a bfloat16 output.
TEST(UNet, BFloat16InputRunsTheNetworkInBFloat16) {
  if (!bfloat16_convolutions_run(torch::kCPU)) GTEST_SKIP() << "no bfloat16 convolutions here";
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  for (const bool attention : {false, true}) {
    for (const bool channels_last : {true, false}) {
      UNetConfig c = tiny_config();
      c.channels = {8, 16, 16};
      c.image_size = 12;
      c.guidance_input = true;
      if (attention) c.attention_at = {3};
      UNet model(c);
      for (auto& p : model->parameters()) p.add_(0.05 * torch::randn_like(p));
      model->set_channels_last(channels_last);
      const auto x = torch::randn({4, 1, 12, 12});
      const auto t = torch::tensor({0, 30, 60, 99}, torch::kLong);
      const auto labels = labels_of({0, 3, kNullLabel, 9});
      const auto w = torch::full({4}, 0.5f);
      const auto exact = model->forward(x, t, labels, w);
      const auto half = model->forward(x.to(torch::kBFloat16), t, labels, w);
      EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
      const double rms = exact.pow(2).mean().sqrt().item<double>();
      const double error = (half.to(torch::kFloat) - exact).pow(2).mean().sqrt().item<double>();
      EXPECT_GT(rms, 1e-2);
      EXPECT_LT(error, 0.02 * rms)
          << "attention " << attention << ", channels-last " << channels_last;
      EXPECT_GT(error, 0);  // it did run in bfloat16
      for (const auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
    }
  }
}

// Training runs channels-last on the CPU (without attention): the loss and every parameter's
// gradient as the NCHW network gives them (the same weights and inputs), for a model and a
// student, in grey and colour; with attention both settings run NCHW and agree exactly.
TEST(UNet, ChannelsLastTrainingEqualsNchw) {
  torch::manual_seed(7);
  struct Case {
    bool student, attention;
    int64_t image_channels;
  };
  for (const Case k : {Case{false, false, 1}, Case{true, false, 3}, Case{false, true, 1}}) {
    UNetConfig c = tiny_config();
    c.channels = {8, 16, 16};
    c.image_size = 12;
    c.image_channels = k.image_channels;
    if (k.attention) c.attention_at = {12, 3};
    c.guidance_input = k.student;
    UNet model(c);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->parameters()) p.add_(0.05 * torch::randn_like(p));
    }
    EXPECT_EQ(model->runs_channels_last(torch::kCPU), !k.attention);
    const auto x = torch::randn({4, k.image_channels, 12, 12});
    const auto target = torch::randn_like(x);
    const auto t = torch::tensor({0, 33, 66, 99}, torch::kLong);
    const auto labels = labels_of({0, 3, kNullLabel, 9});
    const auto w = k.student ? torch::full({4}, 0.5f) : torch::Tensor{};
    auto run = [&](bool channels_last) {
      model->set_channels_last(channels_last);
      model->zero_grad();
      const auto loss = (model->forward(x, t, labels, w) - target).pow(2).mean();
      loss.backward();
      std::map<std::string, torch::Tensor> grads{{"loss", loss.detach()}};
      for (const auto& item : model->named_parameters()) {
        grads.emplace(item.key(), item.value().grad().clone());
      }
      return grads;
    };
    const auto nhwc = run(true), nchw = run(false);
    model->set_channels_last(true);
    for (const auto& [name, g] : nchw) {
      const double scale = std::max(1e-3, g.abs().max().item<double>());
      const double error = max_diff(nhwc.at(name), g) / scale;
      EXPECT_LT(error, 1e-5) << name << ", student " << k.student << ", " << k.image_channels
                             << " channels";
      if (k.attention) {
        EXPECT_EQ(error, 0) << name;
      }
    }
  }
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
