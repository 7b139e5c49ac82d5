#include "numeral/clip/preprocess.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral::clip {
namespace {

// n, or {"shortest_edge": n} / {"height": n, "width": n} (HF's newer form).
int64_t size_field(const nlohmann::json& v, const char* key, int64_t fallback) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_object()) {
    for (const char* k : {"shortest_edge", "height"}) {
      if (v.contains(k)) return v.at(k).get<int64_t>();
    }
  }
  NUMERAL_CHECK(v.is_null(), "preprocessor config: '{}' must be a number or an object", key);
  return fallback;
}

}  // namespace

void PreprocessConfig::validate() const {
  NUMERAL_CHECK(size >= 1 && crop_size >= 1 && crop_size <= size,
                "CLIP preprocessing: size {} and crop_size {} must be positive with crop <= size",
                size, crop_size);
  for (double s : image_std) {
    NUMERAL_CHECK(s > 0, "CLIP preprocessing: image_std {} must be positive", s);
  }
}

PreprocessConfig read_preprocess_config(const std::filesystem::path& path,
                                        const PreprocessConfig& fallback) {
  if (!std::filesystem::exists(path)) return fallback;
  std::ifstream in(path);
  PreprocessConfig c = fallback;
  try {
    nlohmann::json j;
    in >> j;
    c.size = size_field(j.value("size", nlohmann::json()), "size", c.size);
    c.crop_size = size_field(j.value("crop_size", nlohmann::json()), "crop_size", c.crop_size);
    if (j.contains("image_mean")) c.image_mean = j.at("image_mean").get<std::array<double, 3>>();
    if (j.contains("image_std")) c.image_std = j.at("image_std").get<std::array<double, 3>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a CLIP preprocessor config ({})", path.string(), e.what());
  } catch (const Error& e) {
    fail("{}: {}", path.string(), e.what());
  }
  c.validate();
  return c;
}

torch::Tensor preprocess(const torch::Tensor& images, const PreprocessConfig& c) {
  NUMERAL_CHECK(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3),
                "CLIP preprocessing: expected images [N, 1 or 3, H, W], got {}", images.sizes());
  c.validate();
  namespace F = torch::nn::functional;
  // The 8-bit image a PNG of these pixels holds.
  auto x = ((images.to(torch::kFloat) + 1.0) * 127.5).round().clamp(0, 255);
  const int64_t h = x.size(2), w = x.size(3);
  // Shortest side to `size`, the other in proportion (HF get_resize_output_image_size: int()).
  const int64_t out_h = h <= w ? c.size : c.size * h / w;
  const int64_t out_w = h <= w ? c.size * w / h : c.size;
  // PIL resizes in two passes, width then height, each back to 8 bits (so an overshoot of the
  // first pass is clipped before the second); doing the same gives PIL's pixels exactly.
  auto resize = [](const torch::Tensor& t, int64_t rows, int64_t cols) {
    if (t.size(2) == rows && t.size(3) == cols) return t;
    return F::interpolate(t, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{rows, cols})
                                 .mode(torch::kBicubic)
                                 .align_corners(false)
                                 .antialias(true))
        .round()
        .clamp(0, 255);
  };
  x = resize(resize(x, h, out_w), out_h, out_w);
  const int64_t top = (out_h - c.crop_size) / 2, left = (out_w - c.crop_size) / 2;
  x = x.slice(2, top, top + c.crop_size).slice(3, left, left + c.crop_size);
  if (x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  const auto opts = x.options();
  const auto mean =
      torch::tensor(std::vector<double>(c.image_mean.begin(), c.image_mean.end()), opts)
          .view({1, 3, 1, 1});
  const auto std = torch::tensor(std::vector<double>(c.image_std.begin(), c.image_std.end()), opts)
                       .view({1, 3, 1, 1});
  return ((x / 255.0 - mean) / std).contiguous();
}

}  // namespace numeral::clip
