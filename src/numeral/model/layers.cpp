#include "numeral/model/layers.h"

#include <cmath>
#include <map>
#include <mutex>

#include "numeral/model/fused.h"

namespace numeral {

namespace nn = torch::nn;

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  const double scale = half > 1 ? std::log(10000.0) / static_cast<double>(half - 1) : 0.0;
  auto freqs = torch::exp(
      torch::arange(half, torch::TensorOptions().dtype(torch::kFloat).device(t.device())) *
      -scale);                                                        // [half]
  auto args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  return torch::cat({args.sin(), args.cos()}, /*dim=*/1);             // [B, dim]
}

torch::Tensor convolve(nn::Conv2d& conv, const torch::Tensor& x) {
  const auto& w = conv->weight;
  if (x.scalar_type() == w.scalar_type()) return conv(x);
  const auto type = x.scalar_type();
  return torch::conv2d(x, w.to(type), conv->bias.defined() ? conv->bias.to(type) : torch::Tensor{},
                       /*stride=*/1, /*padding=*/(w.size(2) - 1) / 2);
}

bool bfloat16_convolutions_run(const torch::Device& device) {
  static std::mutex mutex;
  static std::map<c10::DeviceType, bool> known;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto it = known.find(device.type());
  if (it != known.end()) return it->second;
  bool runs = true;
  try {
    torch::NoGradGuard no_grad;
    const auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(device);
    const auto x = torch::ones({2, 8, 6, 6}, options).contiguous(torch::MemoryFormat::ChannelsLast);
    torch::conv2d(x, torch::ones({8, 8, 3, 3}, options), torch::ones({8}, options), 1, 1);
  } catch (const std::exception&) {
    runs = false;
  }
  known.emplace(device.type(), runs);
  return runs;
}

EmbedBlockImpl::EmbedBlockImpl(int64_t in_features, int64_t hidden, int64_t out_features,
                               bool zero_out)
    : fc1_(register_module("fc1", nn::Linear(in_features, hidden))),
      fc2_(register_module("fc2", nn::Linear(hidden, out_features))) {
  if (zero_out) {
    torch::NoGradGuard no_grad;
    fc2_->weight.zero_();
    fc2_->bias.zero_();
  }
}

torch::Tensor EmbedBlockImpl::forward(const torch::Tensor& x) {
  return fc2_(torch::gelu(fc1_(x)));
}

ResBlockImpl::ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups)
    : conv1_(register_module(
          "conv1", nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 3).padding(1)))),
      conv2_(register_module(
          "conv2", nn::Conv2d(nn::Conv2dOptions(out_channels, out_channels, 3).padding(1)))),
      norm1_(register_module("norm1", nn::GroupNorm(groups, out_channels))),
      norm2_(register_module("norm2", nn::GroupNorm(groups, out_channels))) {
  if (in_channels != out_channels) {
    shortcut_ =
        register_module("shortcut", nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 1)));
  }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& out) {
  auto h = convolve(conv1_, x);
  const bool fused =
      fusable_group_norm_gelu(h, out) && (shortcut_ || fusable_group_norm_gelu(h, x));
  if (fused) {
    // Sampling on the CPU: each GroupNorm, its GELU (and the residual) in one pass (fused.h).
    group_norm_gelu_out(h, h, norm1_);
    h = convolve(conv2_, h);
    return group_norm_gelu_out(out.defined() ? out : h, h, norm2_,
                               shortcut_ ? convolve(shortcut_, x) : x);
  }
  h = group_norm_gelu(h, norm1_);
  h = group_norm_gelu(convolve(conv2_, h), norm2_);
  const auto residual = shortcut_ ? convolve(shortcut_, x) : x;
  if (!out.defined()) return h + residual;
  torch::Tensor target = out;
  return torch::add_out(target, h, residual);
}

DownBlockImpl::DownBlockImpl(int64_t in_channels, int64_t out_channels, int64_t groups)
    : block_(register_module("block", ResBlock(in_channels, out_channels, groups))) {}

std::pair<torch::Tensor, torch::Tensor> DownBlockImpl::forward(const torch::Tensor& x,
                                                               const torch::Tensor& skip_out) {
  auto skip = block_(x, skip_out);
  return {torch::avg_pool2d(skip, /*kernel_size=*/2), skip};
}

UpBlockImpl::UpBlockImpl(int64_t in_channels, int64_t skip_channels, int64_t out_channels,
                         int64_t groups)
    : up_(register_module(
          "up",
          nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in_channels, in_channels, 2).stride(2)))),
      block_(
          register_module("block", ResBlock(in_channels + skip_channels, out_channels, groups))) {}

torch::Tensor UpBlockImpl::upsample(const torch::Tensor& x, const torch::Tensor& out) {
  // ConvTranspose2d's weight is [in, out, 2, 2]: output pixel (2i + a, 2j + b) of channel o is
  // sum_c x[c, i, j] w[c, o, a, b] + bias[o], a 1x1 convolution to channel 4o + 2a + b followed by
  // a pixel shuffle (which reads channel 4o + 2a + b into pixel (2i + a, 2j + b) of channel o).
  const auto w = up_->weight.to(x.scalar_type());  // bfloat16 sampling: the weights rounded
  const int64_t in = w.size(0), channels = w.size(1);
  const auto patches = torch::conv2d(x, w.permute({1, 2, 3, 0}).reshape({4 * channels, in, 1, 1}),
                                     up_->bias.to(x.scalar_type()).repeat_interleave(4));
  if (!out.defined()) return torch::pixel_shuffle(patches, 2);
  // The pixel shuffle as one strided copy into `out`: [B, o, a, b, i, j] -> [B, o, i, a, j, b].
  const int64_t b = x.size(0), h = x.size(2), wd = x.size(3);
  out.view({b, channels, h, 2, wd, 2})
      .copy_(patches.view({b, channels, 2, 2, h, wd}).permute({0, 1, 4, 2, 5, 3}));
  return out;
}

torch::Tensor UpBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& skip) {
  // The pixel shuffle's output in the skip's layout, so that the joined tensor keeps it.
  return block_(
      torch::cat({upsample(x).contiguous(skip.suggest_memory_format()), skip}, /*dim=*/1));
}

torch::Tensor UpBlockImpl::forward_joined(const torch::Tensor& x, const torch::Tensor& joined) {
  upsample(x, joined.narrow(1, 0, x.size(1)));
  return block_(joined);
}

SelfAttentionImpl::SelfAttentionImpl(int64_t channels, int64_t heads, int64_t groups)
    : norm_(register_module("norm", nn::GroupNorm(groups, channels))),
      attention_(register_module("attention", nn::MultiheadAttention(channels, heads))) {}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x) {
  const auto type = norm_->weight.scalar_type();
  if (x.scalar_type() != type) return forward(x.to(type)).to(x.scalar_type());  // in float32
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto seq = norm_(x).flatten(2).permute({2, 0, 1});  // [H*W, B, C]
  auto out = std::get<0>(attention_(seq, seq, seq));  // [H*W, B, C]
  return x + out.permute({1, 2, 0}).reshape({b, c, h, w});
}

}  // namespace numeral
