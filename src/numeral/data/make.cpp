#include "numeral/data/make.h"

#include <array>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

namespace numeral {
namespace {

using Rgb = std::array<float, 3>;

constexpr std::array<Rgb, 8> kForegrounds = {{{230, 40, 40},
                                              {40, 200, 60},
                                              {70, 110, 250},
                                              {240, 220, 40},
                                              {225, 60, 225},
                                              {40, 215, 225},
                                              {250, 145, 30},
                                              {245, 245, 245}}};
constexpr std::array<Rgb, 8> kBackgrounds = {{{20, 20, 70},
                                              {15, 60, 25},
                                              {75, 15, 20},
                                              {45, 45, 45},
                                              {50, 20, 75},
                                              {10, 60, 65},
                                              {70, 45, 15},
                                              {5, 5, 5}}};

// SplitMix64 (Steele et al. 2014): a portable hash of (seed, index) to 64 well-mixed bits.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

Dataset colored_digits(const Dataset& grey, uint64_t seed) {
  const auto& images = grey.images;
  NUMERAL_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 1 &&
                    images.size(2) == 28 && images.size(3) == 28 &&
                    images.scalar_type() == torch::kUInt8,
                "colored digits: expected grey 28x28 uint8 images [N, 1, 28, 28], got {}",
                images.defined() ? fmt::format("{}", images.sizes()) : std::string("none"));
  const int64_t n = images.size(0);
  auto fg = torch::empty({n, 3, 1, 1});
  auto bg = torch::empty({n, 3, 1, 1});
  auto fg_a = fg.accessor<float, 4>();
  auto bg_a = bg.accessor<float, 4>();
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bits = splitmix64(seed * 0x100000001b3ull + static_cast<uint64_t>(i));
    const Rgb& f = kForegrounds[bits & 7];
    const Rgb& b = kBackgrounds[(bits >> 3) & 7];
    for (int c = 0; c < 3; ++c) {
      fg_a[i][c][0][0] = f[c];
      bg_a[i][c][0][0] = b[c];
    }
  }
  // Centre the 28x28 digit on a 32x32 canvas (2 pixels of background each side).
  const auto a = torch::constant_pad_nd(images.to(torch::kFloat) / 255.0f, {2, 2, 2, 2}, 0.0);
  const auto rgb = bg * (1 - a) + fg * a;  // [N, 3, 32, 32]
  return Dataset{rgb.round().clamp(0, 255).to(torch::kUInt8), grey.labels.clone()};
}

}  // namespace numeral
