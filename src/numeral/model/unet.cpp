#include "numeral/model/unet.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"
#include "numeral/common/fields.h"
#include "numeral/model/fused.h"

namespace numeral {

namespace nn = torch::nn;

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  const auto& c = config_.channels;
  const auto levels = static_cast<int64_t>(c.size());
  input_ = register_module("input", ResBlock(config_.image_channels, c[0], config_.groups));
  down_ = register_module("down", nn::ModuleList());
  const int64_t s = config_.image_size;
  auto attention_after = [&](const std::string& name, int64_t side,
                             int64_t width) -> SelfAttention {
    if (!config_.attends_at(side)) return nullptr;
    return register_module(name, SelfAttention(width, config_.attention_heads, config_.groups));
  };
  for (int64_t i = 0; i + 1 < levels; ++i) {
    down_->push_back(DownBlock(c[i], c[i + 1], config_.groups));
    down_attention_.push_back(
        attention_after(fmt::format("down_attention{}", i), s >> (i + 1), c[i + 1]));
  }
  bottleneck_ = register_module("bottleneck", ResBlock(c.back(), c.back(), config_.groups));
  if (config_.attention) {
    attention_ = register_module("attention",
                                 SelfAttention(c.back(), config_.attention_heads, config_.groups));
  }
  // Decoder levels, from the bottleneck outwards: up_[j] is level i = levels - 2 - j.
  up_ = register_module("up", nn::ModuleList());
  time_embed_ = register_module("time_embed", nn::ModuleList());
  class_embed_ = register_module("class_embed", nn::ModuleList());
  if (config_.guidance_input) guidance_embed_ = register_module("guidance_embed", nn::ModuleList());
  auto add_embeddings = [&](int64_t width) {
    time_embed_->push_back(EmbedBlock(config_.time_embed_dim, config_.time_embed_dim, width));
    class_embed_->push_back(EmbedBlock(config_.num_classes, config_.class_embed_dim, width));
    if (config_.guidance_input) {
      guidance_embed_->push_back(
          EmbedBlock(config_.time_embed_dim, config_.time_embed_dim, width, /*zero_out=*/true));
    }
  };
  add_embeddings(c.back());
  for (int64_t i = levels - 2; i >= 0; --i) {
    up_->push_back(UpBlock(c[i + 1], c[i + 1], c[i], config_.groups));
    up_attention_.push_back(
        attention_after(fmt::format("up_attention{}", up_->size() - 1), s >> i, c[i]));
    add_embeddings(c[i]);
  }
  out_conv1_ =
      register_module("out_conv1", nn::Conv2d(nn::Conv2dOptions(2 * c[0], c[0], 3).padding(1)));
  out_norm_ = register_module("out_norm", nn::GroupNorm(config_.groups, c[0]));
  out_conv2_ = register_module(
      "out_conv2", nn::Conv2d(nn::Conv2dOptions(c[0], config_.image_channels, 3).padding(1)));
}

torch::Tensor one_hot_labels(const torch::Tensor& labels, int64_t num_classes) {
  auto classes = torch::arange(num_classes, labels.options());
  return labels.unsqueeze(1).eq(classes.unsqueeze(0)).to(torch::kFloat);  // [B, K]
}

bool UNetImpl::runs_channels_last(const torch::Device& device) const {
  const auto present = [](const auto& a) { return !a.is_empty(); };
  const bool attention_anywhere =
      attention_ || std::any_of(down_attention_.begin(), down_attention_.end(), present) ||
      std::any_of(up_attention_.begin(), up_attention_.end(), present);
  return channels_last_ && device.is_cpu() && !attention_anywhere;
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x_t, const torch::Tensor& t,
                                const torch::Tensor& labels, const torch::Tensor& guidance,
                                ShapeTrace* trace) {
  const auto& cfg = config_;
  TORCH_CHECK(x_t.dim() == 4 && x_t.size(1) == cfg.image_channels &&
                  x_t.size(2) == cfg.image_size && x_t.size(3) == cfg.image_size,
              "UNet: expected x_t of shape [B, ", cfg.image_channels, ", ", cfg.image_size, ", ",
              cfg.image_size, "], got ", x_t.sizes());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == x_t.size(0), "UNet: expected t of shape [", x_t.size(0),
              "], got ", t.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == x_t.size(0),
              "UNet: expected labels of shape [", x_t.size(0), "], got ", labels.sizes());
  TORCH_CHECK(guidance.defined() == cfg.guidance_input,
              cfg.guidance_input ? "UNet: this model (a distilled student) needs the guidance w"
                                 : "UNet: this model takes no guidance input");
  TORCH_CHECK(!guidance.defined() || (guidance.dim() == 1 && guidance.size(0) == x_t.size(0)),
              "UNet: expected guidance of shape [", x_t.size(0), "], got ", guidance.sizes());
  auto record = [&](const std::string& name, const torch::Tensor& h) {
    if (trace) trace->emplace_back(name, h.sizes().vec());
  };
  const auto time_features = sinusoidal_embedding(t, cfg.time_embed_dim);  // [B, D]
  const auto class_features = one_hot_labels(labels, cfg.num_classes);     // [B, K]
  torch::Tensor guidance_features;                                         // [B, D]
  if (guidance.defined()) {
    guidance_features = sinusoidal_embedding(guidance * kGuidanceFeatureScale, cfg.time_embed_dim);
  }
  // h <- h * (1 + class embedding) + time embedding, per channel (written into `out` if given).
  auto inject = [&](const torch::Tensor& h, size_t level, torch::Tensor out = {}) {
    auto scale = class_embed_[level]->as<EmbedBlock>()->forward(class_features);  // [B, C]
    auto shift = time_embed_[level]->as<EmbedBlock>()->forward(time_features);    // [B, C]
    if (guidance_features.defined()) {
      shift = shift + guidance_embed_[level]->as<EmbedBlock>()->forward(guidance_features);
    }
    // The embeddings run in float32; a bfloat16 network takes their outputs rounded.
    const auto type = h.scalar_type();
    const auto s = (1 + scale).to(type).unsqueeze(-1).unsqueeze(-1),
               b = shift.to(type).unsqueeze(-1).unsqueeze(-1);
    return out.defined() ? torch::addcmul_out(out, b, h, s) : torch::addcmul(b, h, s);
  };
  // Every skip connection ends in a concatenation [up-sampled | skip] along the channels (and the
  // output one in [decoder | input features]). Without autograd (sampling) both parts are written
  // straight into one buffer allocated up front, saving a memory pass over them per level; with
  // autograd they are concatenated. Same result either way (the test UNet.JoinedPathEqualsPlain).
  const bool join_in_place = !torch::GradMode::is_enabled();
  // On the CPU the network runs channels-last (NHWC) from the input on, for sampling and training:
  // oneDNN's convolutions then read and write that layout directly (forward and backward), where
  // with NCHW tensors each one converts its input to its blocked layout and its output back (a
  // fifth of a sampling call, a quarter of oneDNN's time in a training step; BENCHMARKS.md). The
  // fused GroupNorm + GELU (both directions), pooling, up-sampling and the joined buffers all take
  // it. Not with attention (its sequence reshapes are NCHW).
  const bool channels_last = runs_channels_last(x_t.device());
  const auto layout =
      channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const auto& widths = cfg.channels;
  const int64_t batch = x_t.size(0);
  // A joined buffer of `first` + `second` channels at `side`, and a view of its second part.
  auto joined = [&](int64_t first, int64_t second, int64_t side) {
    if (!join_in_place) return std::pair<torch::Tensor, torch::Tensor>{};
    auto buffer =
        torch::empty({batch, first + second, side, side}, x_t.options().memory_format(layout));
    return std::pair{buffer, buffer.narrow(1, first, second)};
  };

  const auto [output_joined, x0_slot] = joined(widths[0], widths[0], cfg.image_size);
  // A freshly allocated channels-last input (even with one channel, whose strides a contiguous
  // tensor leaves ambiguous) makes the first convolution's output channels-last.
  const auto x_in = channels_last
                        ? torch::empty(x_t.sizes(), x_t.options().memory_format(layout)).copy_(x_t)
                        : x_t;
  const auto x0_features = input_(x_in, x0_slot);  // [B, c0, H, W]
  record("input ResBlock", x0_features);
  auto h = x0_features;
  // Per encoder level: its skip, and (in place only; undefined otherwise) its joined buffer.
  std::vector<torch::Tensor> skips, skip_joined;
  for (size_t i = 0; i < down_->size(); ++i) {
    // Up-block level i (counted from the top) joins its up-sampled input (widths[i + 1]
    // channels) with this level's skip (widths[i + 1]).
    const auto [buffer, skip_slot] =
        joined(widths[i + 1], widths[i + 1], cfg.image_size >> static_cast<int64_t>(i));
    auto [down, skip] = down_[i]->as<DownBlock>()->forward(h, skip_slot);
    skips.push_back(skip);
    skip_joined.push_back(buffer);
    h = down;
    if (down_attention_[i]) h = down_attention_[i](h);
    record(
        fmt::format(down_attention_[i] ? "down[{}] DownBlock+attention" : "down[{}] DownBlock", i),
        h);
  }
  h = bottleneck_(h);
  if (attention_) h = attention_(h);
  h = inject(h, 0);
  record(cfg.attention ? "bottleneck ResBlock+attention" : "bottleneck ResBlock", h);
  for (size_t j = 0; j < up_->size(); ++j) {
    const size_t level = skips.size() - 1 - j;
    auto* block = up_[j]->as<UpBlock>();
    h = join_in_place ? block->forward_joined(h, skip_joined[level])
                      : block->forward(h, skips[level]);
    if (up_attention_[j]) h = up_attention_[j](h);
    const bool last = j + 1 == up_->size();
    h = inject(h, j + 1,
               join_in_place && last ? output_joined.narrow(1, 0, widths[0]) : torch::Tensor{});
    record(fmt::format(up_attention_[j] ? "up[{}] UpBlock+attention" : "up[{}] UpBlock", j), h);
  }
  h = convolve(out_conv1_, join_in_place ? output_joined : torch::cat({h, x0_features}, /*dim=*/1));
  h = fusable_group_norm_gelu(h) ? group_norm_gelu_out(h, h, out_norm_)
                                 : group_norm_gelu(h, out_norm_);
  h = convolve(out_conv2_, h);
  record("output conv", h);
  return channels_last ? h.contiguous() : h;
}

int64_t forward_flops(const UNetConfig& config) {
  const auto& c = config.channels;
  const auto levels = static_cast<int64_t>(c.size());
  const int64_t s = config.image_size, ci = config.image_channels;
  // A ResBlock from a to b channels at a side of n pixels: two 3x3 convolutions and a 1x1
  // shortcut when the width changes.
  auto res_block = [](int64_t a, int64_t b, int64_t n) {
    return 2 * 9 * n * n * (a * b + b * b) + (a != b ? 2 * n * n * a * b : 0);
  };
  auto embeddings = [&](int64_t width) {
    const int64_t d = config.time_embed_dim, e = config.class_embed_dim;
    const int64_t time = 2 * (d * d + d * width);
    return time * (config.guidance_input ? 2 : 1) + 2 * (config.num_classes * e + e * width);
  };
  // Self-attention over n x n tokens of `width` channels: projections (4 C^2 per token) and two
  // n^2 x n^2 x C products.
  auto attention = [](int64_t width, int64_t n) {
    const int64_t tokens = n * n;
    return 2 * (4 * width * width * tokens + 2 * tokens * tokens * width);
  };
  auto attention_at = [&](int64_t width, int64_t n) {
    return config.attends_at(n) ? attention(width, n) : 0;
  };
  int64_t f = res_block(ci, c[0], s);
  for (int64_t i = 0; i + 1 < levels; ++i) {
    f += res_block(c[i], c[i + 1], s >> i) + attention_at(c[i + 1], s >> (i + 1));
  }
  const int64_t bottom = s >> (levels - 1), width = c.back();
  f += res_block(width, width, bottom) + embeddings(width);
  if (config.attention) f += attention(width, bottom);
  for (int64_t i = levels - 2; i >= 0; --i) {
    const int64_t n = s >> i, half = s >> (i + 1);
    f += 2 * 4 * half * half * c[i + 1] * c[i + 1];  // 2x2 stride-2 transposed convolution
    f += res_block(2 * c[i + 1], c[i], n) + embeddings(c[i]) + attention_at(c[i], n);
  }
  f += 2 * 9 * s * s * (2 * c[0] * c[0] + c[0] * ci);  // output convolutions
  return f;
}

int64_t parameter_count(const nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

std::string model_summary(UNet& model) {
  const auto& cfg = model->config();
  ShapeTrace trace;
  {
    torch::NoGradGuard no_grad;
    auto device = model->parameters().front().device();
    auto x = torch::zeros({1, cfg.image_channels, cfg.image_size, cfg.image_size},
                          torch::TensorOptions().device(device));
    auto t = torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(device));
    torch::Tensor w;
    if (cfg.guidance_input) w = torch::zeros({1}, torch::TensorOptions().device(device));
    model->forward(x, t, t, w, &trace);
  }
  std::vector<std::string> attention;
  if (cfg.attention) attention.push_back("bottleneck");
  if (!cfg.attention_at.empty()) attention.push_back(fmt::format("sides {}", cfg.attention_at));
  if (attention.empty()) attention.push_back("no");
  std::string out = fmt::format("UNet  image {}x{}x{}  widths {}  classes {}  attention {}{}\n",
                                cfg.image_size, cfg.image_size, cfg.image_channels, cfg.channels,
                                cfg.num_classes, fmt::join(attention, " + "),
                                cfg.guidance_input ? "  guidance input (student)" : "");
  out += fmt::format("  {:<32} {}\n", "block", "output shape");
  for (const auto& [name, shape] : trace) {
    out += fmt::format("  {:<32} [{}]\n", name, fmt::join(shape, ", "));
  }
  out += "  parameters by module:\n";
  for (const auto& child : model->named_children()) {
    out += fmt::format("    {:<30} {:>10}\n", child.key(), parameter_count(*child.value()));
  }
  out += fmt::format("  total trainable parameters: {} ({:.2f} M)\n", parameter_count(*model),
                     parameter_count(*model) / 1e6);
  return out;
}

}  // namespace numeral

namespace numeral {

void load_extending_classes(UNetImpl& to, const UNetImpl& from, const std::string& origin) {
  UNetConfig widened = from.config();
  widened.num_classes = to.config().num_classes;
  const FieldDifference differ = first_difference(widened, to.config());
  NUMERAL_CHECK(!differ, "{}: its model has {} {}, this one {}", origin, differ.field, differ.was,
                differ.now);
  NUMERAL_CHECK(from.config().num_classes <= to.config().num_classes,
                "{}: its model has {} classes, more than the {} of this one", origin,
                from.config().num_classes, to.config().num_classes);
  std::map<std::string, torch::Tensor> source;
  for (const auto& p : from.named_parameters()) source.emplace(p.key(), p.value());
  for (const auto& b : from.named_buffers()) source.emplace(b.key(), b.value());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // destination (view), source
  auto plan = [&](const std::string& name, const torch::Tensor& dst) {
    const auto it = source.find(name);
    NUMERAL_CHECK(it != source.end(), "{}: its model has no tensor '{}'", origin, name);
    const torch::Tensor& src = it->second;
    // The class embeddings' first layers: [hidden, classes]; the old classes' columns come first.
    const bool widens = name.rfind("class_embed.", 0) == 0 && name.find(".fc1.weight") != name.npos;
    const torch::Tensor target =
        widens && dst.dim() == 2 && src.dim() == 2 && src.size(1) <= dst.size(1)
            ? dst.narrow(1, 0, src.size(1))
            : dst;
    NUMERAL_CHECK(src.sizes() == target.sizes(), "{}: '{}' has shape {} but this model expects {}",
                  origin, name, src.sizes(), dst.sizes());
    copies.emplace_back(target, src);
  };
  for (const auto& p : to.named_parameters()) plan(p.key(), p.value());
  for (const auto& b : to.named_buffers()) plan(b.key(), b.value());
  NUMERAL_CHECK(copies.size() == source.size(), "{}: its model has {} tensors, this one {}", origin,
                source.size(), copies.size());
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.to(dst.device(), dst.scalar_type()));
}

}  // namespace numeral
