#include "numeral/model/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "numeral/common/error.h"
#include "numeral/common/format.h"

// The kernel is compiled twice, for x86-64-v3 (AVX2 and FMA; Intel since 2013, AMD since 2015) and
// for the baseline, and the loader picks by the CPU's features (GCC's function multi-versioning,
// an ifunc; "arch=haswell" would test for that Intel model instead). Its loops are written so that
// the compiler vectorises them: no calls, no branches inside.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define NUMERAL_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NUMERAL_CPU_CLONES
#endif

namespace numeral {
namespace {

// erf(x) by a rational approximation, x P(x^2) / Q(x^2) on x clamped to [-4, 4] (beyond it erf is
// +-1 in float): the coefficients of Eigen's and XLA's float erf; within 1e-7 of std::erf.
inline __attribute__((always_inline)) float erf_rational(float x) {
  const float a = std::min(4.0f, std::max(-4.0f, x));
  const float x2 = a * a;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return a * p / q;
}

// T: the activations' element type, float or (channels-last sampling only) c10::BFloat16, whose
// values the kernel reads into float and writes back rounded to nearest even.
template <typename T>
struct PlanOf {
  const T* x;
  T* out;
  const T* residual;                              // null: nothing added
  const float* gamma;                             // null: 1
  const float* beta;                              // null: 0
  int64_t x_stride, out_stride, residual_stride;  // between samples, in elements
  int64_t x_pixel, out_pixel, residual_pixel;     // between pixels (channels-last only)
  int64_t channels, groups, pixels;               // C, G, H * W
  double eps;
  double* mean = nullptr;  // [B, G], written when not null (for the backward pass)
  double* rstd = nullptr;
};
using Plan = PlanOf<float>;

// Mean and 1 / standard deviation from the sums of n values and of their squares.
inline void statistics(double sum, double square, double n, double eps, double& mean,
                       double& rstd) {
  mean = sum / n;
  const double var = std::max(0.0, square / n - mean * mean);
  rstd = 1.0 / std::sqrt(var + eps);
}

// Mean and 1 / standard deviation of n floats: one pass of float64 sums of x and x^2 (float64
// keeps E[x^2] - mean^2 exact enough unless |mean| exceeds the deviation by ~1e5). Eight partial
// sums each, so that the loop vectorises without reassociating a single sum.
NUMERAL_CPU_CLONES void moments(const float* x, int64_t n, double& mean, double& rstd, double eps) {
  double sum[8] = {}, square[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const double v = x[i + k];
      sum[k] += v;
      square[k] += v * v;
    }
  }
  double s = 0, q = 0;
  for (; i < n; ++i) {
    s += x[i];
    q += static_cast<double>(x[i]) * x[i];
  }
  for (int k = 0; k < 8; ++k) {
    s += sum[k];
    q += square[k];
  }
  statistics(s, q, static_cast<double>(n), eps, mean, rstd);
}

inline __attribute__((always_inline)) float gelu_of(float x, float scale, float shift) {
  constexpr float kRsqrt2 = 0.70710678118654752f;
  const float v = x * scale + shift;
  return 0.5f * v * (1.0f + erf_rational(v * kRsqrt2));
}

// e^z for z <= 0 (clamped to [-87, 0], where e^z is a normal float), Cephes' expf: z = n ln 2 + r
// with |r| <= ln 2 / 2, e^r by a degree-6 polynomial (within 2 ulp), 2^n from the exponent bits.
inline __attribute__((always_inline)) float exp_nonpositive(float z) {
  z = std::max(-87.0f, std::min(0.0f, z));
  const float n = std::floor(z * 1.44269504088896341f + 0.5f);
  const float r = z - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// gelu'(v) = Phi(v) + v phi(v), with Phi and phi the standard normal's distribution and density.
inline __attribute__((always_inline)) float gelu_derivative(float v) {
  constexpr float kRsqrt2 = 0.70710678118654752f, kRsqrt2Pi = 0.39894228040143268f;
  return 0.5f * (1.0f + erf_rational(v * kRsqrt2)) + v * kRsqrt2Pi * exp_nonpositive(-0.5f * v * v);
}

// The loops, with no aliasing between the pointers they are given (so that they vectorise):
// from x into another buffer y, or over y in place.
template <bool kResidual>
inline __attribute__((always_inline)) void gelu_into(const float* __restrict x, float* __restrict y,
                                                     const float* __restrict r, int64_t n,
                                                     float scale, float shift) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_of(x[i], scale, shift) + (kResidual ? r[i] : 0.0f);
}

template <bool kResidual>
inline __attribute__((always_inline)) void gelu_in_place(float* __restrict y,
                                                         const float* __restrict r, int64_t n,
                                                         float scale, float shift) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_of(y[i], scale, shift) + (kResidual ? r[i] : 0.0f);
}

// y[i] = gelu(x[i] * scale + shift) (+ r[i]) for one channel's pixels; y may be x.
NUMERAL_CPU_CLONES void normalize_gelu(const float* x, float* y, const float* r, int64_t n,
                                       float scale, float shift) {
  if (x == y) {
    r ? gelu_in_place<true>(y, r, n, scale, shift) : gelu_in_place<false>(y, r, n, scale, shift);
  } else {
    r ? gelu_into<true>(x, y, r, n, scale, shift) : gelu_into<false>(x, y, r, n, scale, shift);
  }
}

void run_group(const Plan& p, int64_t sample, int64_t group) {
  const int64_t per_group = p.channels / p.groups;
  const int64_t first = group * per_group, offset = first * p.pixels;
  const float* x = p.x + sample * p.x_stride + offset;
  float* out = p.out + sample * p.out_stride + offset;
  const float* r = p.residual ? p.residual + sample * p.residual_stride + offset : nullptr;
  double mean = 0, rstd = 0;
  moments(x, per_group * p.pixels, mean, rstd, p.eps);
  if (p.mean) {
    p.mean[sample * p.groups + group] = mean;
    p.rstd[sample * p.groups + group] = rstd;
  }
  for (int64_t c = 0; c < per_group; ++c) {
    const double gamma = p.gamma ? p.gamma[first + c] : 1.0;
    const double beta = p.beta ? p.beta[first + c] : 0.0;
    const double scale = rstd * gamma;
    const int64_t at = c * p.pixels;
    normalize_gelu(x + at, out + at, r ? r + at : nullptr, p.pixels, static_cast<float>(scale),
                   static_cast<float>(beta - mean * scale));
  }
}

// The backward pass of y = gelu(v), v = xhat gamma + beta, xhat = (x - mean) rstd, over one
// (sample, group) of n = channels x pixels values. With g = dy gelu'(v) and, per channel,
// a_c = sum g and b_c = sum g xhat (the gradients of beta_c and gamma_c from this sample),
//   dx = rstd (gamma_c g - m1 - xhat m2),  m1 = sum_c gamma_c a_c / n,  m2 = sum_c gamma_c b_c / n.
// The first loop writes g into dx and sums a_c and b_c (float64, eight partial sums as in
// `moments`); the second turns g into dx in place.
NUMERAL_CPU_CLONES void gelu_grad_sums(const float* __restrict x, const float* __restrict dy,
                                       float* __restrict g, int64_t n, float scale, float shift,
                                       float xhat_scale, float xhat_shift, double& a, double& b) {
  double sum_g[8] = {}, sum_gx[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float v = x[i + k] * scale + shift;
      const float gi = dy[i + k] * gelu_derivative(v);
      g[i + k] = gi;
      sum_g[k] += gi;
      sum_gx[k] += static_cast<double>(gi) * (x[i + k] * xhat_scale + xhat_shift);
    }
  }
  a = b = 0;
  for (; i < n; ++i) {
    const float gi = dy[i] * gelu_derivative(x[i] * scale + shift);
    g[i] = gi;
    a += gi;
    b += static_cast<double>(gi) * (x[i] * xhat_scale + xhat_shift);
  }
  for (int k = 0; k < 8; ++k) {
    a += sum_g[k];
    b += sum_gx[k];
  }
}

NUMERAL_CPU_CLONES void affine_of_two(float* __restrict y, const float* __restrict x, int64_t n,
                                      float ky, float kx, float k) {
  for (int64_t i = 0; i < n; ++i) y[i] = ky * y[i] + kx * x[i] + k;
}

struct BackwardPlan {
  const float* x;      // [B, C, H, W], contiguous or channels-last contiguous
  const float* dy;     // the same layout
  float* dx;           // the same layout
  const float* gamma;  // [C]
  const float* beta;   // [C]
  const double* mean;  // [B, G]
  const double* rstd;  // [B, G]
  double* dgamma;      // [B, C]: each sample's part, summed over B afterwards
  double* dbeta;       // [B, C]
  int64_t channels, groups, pixels;
};

void run_group_backward(const BackwardPlan& p, int64_t sample, int64_t group) {
  const int64_t per_group = p.channels / p.groups;
  const int64_t first = group * per_group;
  const int64_t offset = sample * p.channels * p.pixels + first * p.pixels;
  const double mean = p.mean[sample * p.groups + group], rstd = p.rstd[sample * p.groups + group];
  double m1 = 0, m2 = 0;
  for (int64_t c = 0; c < per_group; ++c) {
    const int64_t at = offset + c * p.pixels, channel = first + c;
    const double gamma = p.gamma[channel], scale = rstd * gamma;
    double a = 0, b = 0;
    gelu_grad_sums(p.x + at, p.dy + at, p.dx + at, p.pixels, static_cast<float>(scale),
                   static_cast<float>(p.beta[channel] - mean * scale), static_cast<float>(rstd),
                   static_cast<float>(-mean * rstd), a, b);
    p.dbeta[sample * p.channels + channel] = a;
    p.dgamma[sample * p.channels + channel] = b;
    m1 += gamma * a;
    m2 += gamma * b;
  }
  const double n = static_cast<double>(per_group * p.pixels);
  m1 /= n;
  m2 /= n;
  // dx = rstd gamma_c g + kx x + k, with xhat = x rstd - mean rstd expanded.
  const double kx = -rstd * rstd * m2, k = rstd * (rstd * m2 * mean - m1);
  for (int64_t c = 0; c < per_group; ++c) {
    const int64_t at = offset + c * p.pixels;
    affine_of_two(p.dx + at, p.x + at, p.pixels, static_cast<float>(rstd * p.gamma[first + c]),
                  static_cast<float>(kx), static_cast<float>(k));
  }
}

// The backward pass of one channels-last sample, all its groups together, with the loops running
// along each pixel's channels: the same two passes as run_group_backward (g into dx with the
// per-channel sums, then dx in place), with per-channel coefficients in place of per-group ones.
NUMERAL_CPU_CLONES void gelu_grad_sums_nhwc(const float* __restrict x, const float* __restrict dy,
                                            float* __restrict g, int64_t pixels, int64_t channels,
                                            const float* __restrict scale,
                                            const float* __restrict shift,
                                            const float* __restrict xhat_scale,
                                            const float* __restrict xhat_shift,
                                            double* __restrict a, double* __restrict b) {
  for (int64_t c = 0; c < channels; ++c) a[c] = b[c] = 0;
  for (int64_t i = 0; i < pixels; ++i) {
    const int64_t row = i * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float v = x[row + c] * scale[c] + shift[c];
      const float gi = dy[row + c] * gelu_derivative(v);
      g[row + c] = gi;
      a[c] += gi;
      b[c] += static_cast<double>(gi) * (x[row + c] * xhat_scale[c] + xhat_shift[c]);
    }
  }
}

NUMERAL_CPU_CLONES void affine_of_two_nhwc(float* __restrict y, const float* __restrict x,
                                           int64_t pixels, int64_t channels,
                                           const float* __restrict ky, const float* __restrict kx,
                                           const float* __restrict k) {
  for (int64_t i = 0; i < pixels; ++i) {
    const int64_t row = i * channels;
    for (int64_t c = 0; c < channels; ++c)
      y[row + c] = ky[c] * y[row + c] + kx[c] * x[row + c] + k[c];
  }
}

void run_sample_backward_nhwc(const BackwardPlan& p, int64_t sample) {
  const int64_t channels = p.channels, per_group = channels / p.groups;
  const int64_t offset = sample * channels * p.pixels;
  std::vector<float> scale(channels), shift(channels), xhat_scale(channels), xhat_shift(channels);
  std::vector<double> a(channels), b(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t g = c / per_group;
    const double mean = p.mean[sample * p.groups + g], rstd = p.rstd[sample * p.groups + g];
    const double s = rstd * p.gamma[c];
    scale[c] = static_cast<float>(s);
    shift[c] = static_cast<float>(p.beta[c] - mean * s);
    xhat_scale[c] = static_cast<float>(rstd);
    xhat_shift[c] = static_cast<float>(-mean * rstd);
  }
  gelu_grad_sums_nhwc(p.x + offset, p.dy + offset, p.dx + offset, p.pixels, channels, scale.data(),
                      shift.data(), xhat_scale.data(), xhat_shift.data(), a.data(), b.data());
  // Per group, as in run_group_backward: dx = rstd gamma_c g + kx x + k.
  std::vector<float> ky(channels), kx(channels), k(channels);
  const double n = static_cast<double>(per_group * p.pixels);
  for (int64_t g = 0; g < p.groups; ++g) {
    const double mean = p.mean[sample * p.groups + g], rstd = p.rstd[sample * p.groups + g];
    double m1 = 0, m2 = 0;
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      p.dbeta[sample * channels + c] = a[c];
      p.dgamma[sample * channels + c] = b[c];
      m1 += p.gamma[c] * a[c];
      m2 += p.gamma[c] * b[c];
    }
    m1 /= n;
    m2 /= n;
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      ky[c] = static_cast<float>(rstd * p.gamma[c]);
      kx[c] = static_cast<float>(-rstd * rstd * m2);
      k[c] = static_cast<float>(rstd * (rstd * m2 * mean - m1));
    }
  }
  affine_of_two_nhwc(p.dx + offset, p.x + offset, p.pixels, channels, ky.data(), kx.data(),
                     k.data());
}

// How a [B, C, H, W] tensor's samples lie in memory, as far as the kernels can take them: each
// sample's [C, H, W] contiguous (NCHW), or each pixel's C channels contiguous with the pixels at
// one stride of at least C floats, row after row (NHWC: channels-last, or a channel slice of a
// channels-last buffer). A tensor that is both (one channel, or one pixel) counts as NCHW.
enum class Layout { kNone, kNchw, kNhwc };

Layout layout_of(const torch::Tensor& t) {
  if (t.dim() != 4) return Layout::kNone;
  if (t.stride(3) == 1 && t.stride(2) == t.size(3) && t.stride(1) == t.size(2) * t.size(3)) {
    return Layout::kNchw;
  }
  if (t.stride(1) == 1 && t.stride(3) >= t.size(1) && t.stride(2) == t.size(3) * t.stride(3)) {
    return Layout::kNhwc;
  }
  return Layout::kNone;
}

// The channels-last kernel: one sample at a time (all its groups together), the loops running
// along the channels of each pixel. Per-channel float64 sums of x and x^2 give each group's
// statistics, then y = gelu(x scale_c + shift_c) (+ r) pixel by pixel.
template <typename T>
NUMERAL_CPU_CLONES void channel_sums(const T* __restrict x, int64_t pixels, int64_t stride,
                                     int64_t channels, double* __restrict sum,
                                     double* __restrict square) {
  for (int64_t c = 0; c < channels; ++c) sum[c] = square[c] = 0;
  for (int64_t i = 0; i < pixels; ++i) {
    const T* __restrict row = x + i * stride;
    for (int64_t c = 0; c < channels; ++c) {
      const double v = static_cast<float>(row[c]);
      sum[c] += v;
      square[c] += v * v;
    }
  }
}

// y = gelu(x scale_c + shift_c) (+ r) over a sample's pixels; out may be x (in place: then only
// `out` is read, so that the restrict-qualified pointers never alias).
template <typename T, bool kResidual, bool kInPlace>
NUMERAL_CPU_CLONES void gelu_pixels(const PlanOf<T>& p, const T* x, T* out, const T* r,
                                    const float* __restrict scale, const float* __restrict shift) {
  for (int64_t i = 0; i < p.pixels; ++i) {
    T* __restrict y = out + i * p.out_pixel;
    const T* __restrict in = kInPlace ? nullptr : x + i * p.x_pixel;
    const T* __restrict add = kResidual ? r + i * p.residual_pixel : nullptr;
    for (int64_t c = 0; c < p.channels; ++c) {
      const float v = static_cast<float>(kInPlace ? y[c] : in[c]);
      y[c] = static_cast<T>(gelu_of(v, scale[c], shift[c]) +
                            (kResidual ? static_cast<float>(add[c]) : 0.0f));
    }
  }
}

template <typename T>
void run_sample_nhwc(const PlanOf<T>& p, int64_t sample) {
  const int64_t channels = p.channels, per_group = channels / p.groups;
  std::vector<double> sum(channels), square(channels);
  std::vector<float> scale(channels), shift(channels);
  const T* x = p.x + sample * p.x_stride;
  channel_sums(x, p.pixels, p.x_pixel, channels, sum.data(), square.data());
  const double n = static_cast<double>(per_group * p.pixels);
  for (int64_t g = 0; g < p.groups; ++g) {
    double s = 0, q = 0;
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      s += sum[c];
      q += square[c];
    }
    double mean = 0, rstd = 0;
    statistics(s, q, n, p.eps, mean, rstd);
    if (p.mean) {
      p.mean[sample * p.groups + g] = mean;
      p.rstd[sample * p.groups + g] = rstd;
    }
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      const double gamma = p.gamma ? p.gamma[c] : 1.0, beta = p.beta ? p.beta[c] : 0.0;
      scale[c] = static_cast<float>(rstd * gamma);
      shift[c] = static_cast<float>(beta - mean * rstd * gamma);
    }
  }
  T* out = p.out + sample * p.out_stride;
  const T* r = p.residual ? p.residual + sample * p.residual_stride : nullptr;
  const bool in_place = x == out && p.x_pixel == p.out_pixel;
  if (in_place) {
    r ? gelu_pixels<T, true, true>(p, x, out, r, scale.data(), shift.data())
      : gelu_pixels<T, false, true>(p, x, out, r, scale.data(), shift.data());
  } else {
    r ? gelu_pixels<T, true, false>(p, x, out, r, scale.data(), shift.data())
      : gelu_pixels<T, false, false>(p, x, out, r, scale.data(), shift.data());
  }
}

}  // namespace

bool fusable_group_norm_gelu(const torch::Tensor& x, const torch::Tensor& like) {
  const Layout layout = layout_of(x);
  const bool typed = x.scalar_type() == torch::kFloat ||
                     (x.scalar_type() == torch::kBFloat16 && layout == Layout::kNhwc);
  const bool fusable =
      !torch::GradMode::is_enabled() && x.device().is_cpu() && typed && layout != Layout::kNone;
  return fusable &&
         (!like.defined() || (fusable_group_norm_gelu(like) && layout_of(like) == layout &&
                              like.scalar_type() == x.scalar_type()));
}

namespace {

void check_norm(const torch::Tensor& x, const torch::nn::GroupNormOptions& o, const char* what) {
  NUMERAL_CHECK(x.dim() == 4, "{}: expected [B, C, H, W], got {}", what, x.sizes());
  NUMERAL_CHECK(x.size(1) == o.num_channels() && x.size(1) % o.num_groups() == 0,
                "{}: {} channels for a GroupNorm of {} channels in {} groups", what, x.size(1),
                o.num_channels(), o.num_groups());
}

template <typename T = float>
PlanOf<T> forward_plan(const torch::Tensor& out, const torch::Tensor& x,
                       const torch::Tensor& residual, const torch::Tensor& gamma,
                       const torch::Tensor& beta, int64_t groups, double eps) {
  PlanOf<T> p;
  p.x = x.data_ptr<T>();
  p.out = out.data_ptr<T>();
  p.residual = residual.defined() ? residual.data_ptr<T>() : nullptr;
  p.gamma = gamma.defined() ? gamma.data_ptr<float>() : nullptr;
  p.beta = beta.defined() ? beta.data_ptr<float>() : nullptr;
  p.x_stride = x.stride(0);
  p.out_stride = out.stride(0);
  p.residual_stride = residual.defined() ? residual.stride(0) : 0;
  p.x_pixel = x.stride(3);
  p.out_pixel = out.stride(3);
  p.residual_pixel = residual.defined() ? residual.stride(3) : 0;
  p.channels = x.size(1);
  p.groups = groups;
  p.pixels = x.size(2) * x.size(3);
  p.eps = eps;
  return p;
}

// Every (sample, group) on ATen's OpenMP team (see CMakeLists.txt): its worker threads wait for
// work between ATen's kernels, so another pool's threads would compete with them for the cores.
template <typename Body>
void for_each_group(int64_t samples, int64_t groups, const Body& body) {
  at::parallel_for(0, samples * groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i / groups, i % groups);
  });
}

template <typename Body>
void for_each_sample(int64_t samples, const Body& body) {
  at::parallel_for(0, samples, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) body(b);
  });
}

// The forward kernel over a whole batch of `samples`: per (sample, group) for NCHW, per sample
// for channels-last. The one dispatch of group_norm_gelu_out and the training node's forward.
template <typename T>
void run_forward(const PlanOf<T>& p, int64_t samples, Layout layout) {
  if (layout == Layout::kNhwc) {
    for_each_sample(samples, [&](int64_t b) { run_sample_nhwc(p, b); });
  } else if constexpr (std::is_same_v<T, float>) {
    for_each_group(samples, p.groups, [&](int64_t b, int64_t g) { run_group(p, b, g); });
  } else {
    NUMERAL_CHECK(false, "group_norm_gelu_out: bfloat16 takes channels-last tensors only");
  }
}

// A training tensor's layout for the kernels: channels-last when it is densely so (and not also
// contiguous, as one-channel or one-pixel tensors are), NCHW otherwise.
bool dense_channels_last(const torch::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(torch::MemoryFormat::ChannelsLast);
}

// gelu(group_norm(x)) as one autograd node: saves x and the statistics. Channels-last x (as
// channels-last training makes it) stays so, and so do the output and dx; anything else is made
// contiguous.
class GroupNormGelu : public torch::autograd::Function<GroupNormGelu> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                               torch::Tensor gamma, torch::Tensor beta, int64_t groups,
                               double eps) {
    const bool nhwc = dense_channels_last(x);
    if (!nhwc) x = x.contiguous();
    gamma = gamma.contiguous();
    beta = beta.contiguous();
    auto out = torch::empty_like(x);  // x's layout
    auto stats = torch::empty({2, x.size(0), groups}, x.options().dtype(torch::kDouble));
    Plan p = forward_plan(out, x, {}, gamma, beta, groups, eps);
    p.mean = stats[0].data_ptr<double>();
    p.rstd = stats[1].data_ptr<double>();
    run_forward(p, x.size(0), nhwc ? Layout::kNhwc : Layout::kNchw);
    ctx->save_for_backward({x, gamma, beta, stats});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &gamma = saved[1], &beta = saved[2], &stats = saved[3];
    const bool nhwc = dense_channels_last(x);
    const auto dy = grads[0].contiguous(nhwc ? torch::MemoryFormat::ChannelsLast
                                             : torch::MemoryFormat::Contiguous);
    auto dx = torch::empty_like(x);
    auto parts = torch::empty({2, x.size(0), x.size(1)}, stats.options());
    BackwardPlan p;
    p.x = x.data_ptr<float>();
    p.dy = dy.data_ptr<float>();
    p.dx = dx.data_ptr<float>();
    p.gamma = gamma.data_ptr<float>();
    p.beta = beta.data_ptr<float>();
    p.mean = stats[0].data_ptr<double>();
    p.rstd = stats[1].data_ptr<double>();
    p.dgamma = parts[0].data_ptr<double>();
    p.dbeta = parts[1].data_ptr<double>();
    p.channels = x.size(1);
    p.groups = stats.size(2);
    p.pixels = x.size(2) * x.size(3);
    if (nhwc) {
      for_each_sample(x.size(0), [&](int64_t b) { run_sample_backward_nhwc(p, b); });
    } else {
      for_each_group(x.size(0), p.groups,
                     [&](int64_t b, int64_t g) { run_group_backward(p, b, g); });
    }
    // Each sample's parts summed in one order, whatever the thread count.
    const auto sums = parts.sum(1).to(torch::kFloat);
    return {dx, sums[0], sums[1], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor group_norm_gelu(const torch::Tensor& x, const torch::nn::GroupNorm& norm) {
  const auto& o = norm->options;
  const bool fused = x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 &&
                     o.affine() && norm->weight.scalar_type() == torch::kFloat;
  if (!fused) {  // (a bfloat16 x, in sampling, takes the affine weights rounded)
    const auto type = x.scalar_type();
    const auto weight = o.affine() ? norm->weight.to(type) : torch::Tensor{};
    const auto bias = o.affine() ? norm->bias.to(type) : torch::Tensor{};
    return torch::gelu(torch::group_norm(x, o.num_groups(), weight, bias, o.eps()));
  }
  check_norm(x, o, "group_norm_gelu");
  return GroupNormGelu::apply(x, norm->weight, norm->bias, o.num_groups(), o.eps());
}

torch::Tensor group_norm_gelu_out(const torch::Tensor& out, const torch::Tensor& x,
                                  const torch::nn::GroupNorm& norm, const torch::Tensor& residual) {
  const auto& o = norm->options;
  NUMERAL_CHECK(fusable_group_norm_gelu(x) && fusable_group_norm_gelu(out),
                "group_norm_gelu_out: expected float32 CPU [B, C, H, W] tensors with contiguous "
                "samples or channels-last pixels (or bfloat16 channels-last ones), outside "
                "autograd (got {} {} and {} {})",
                c10::toString(x.scalar_type()), x.sizes(), c10::toString(out.scalar_type()),
                out.sizes());
  NUMERAL_CHECK(out.sizes() == x.sizes() && (!residual.defined() || residual.sizes() == x.sizes()),
                "group_norm_gelu_out: shapes differ ({}, out {}, residual {})", x.sizes(),
                out.sizes(), residual.defined() ? residual.sizes() : x.sizes());
  NUMERAL_CHECK(!residual.defined() || fusable_group_norm_gelu(residual),
                "group_norm_gelu_out: the residual must be float32 with contiguous samples or "
                "channels-last pixels (or bfloat16 channels-last)");
  check_norm(x, o, "group_norm_gelu_out");
  const Layout layout = layout_of(x);
  NUMERAL_CHECK(layout_of(out) == layout && (!residual.defined() || layout_of(residual) == layout),
                "group_norm_gelu_out: x, out and the residual must share one memory layout "
                "(contiguous samples or channels-last)");
  NUMERAL_CHECK(out.scalar_type() == x.scalar_type() &&
                    (!residual.defined() || residual.scalar_type() == x.scalar_type()),
                "group_norm_gelu_out: x, out and the residual must be of one type");
  const auto gamma = o.affine() ? norm->weight.to(torch::kFloat).contiguous() : torch::Tensor{};
  const auto beta = o.affine() ? norm->bias.to(torch::kFloat).contiguous() : torch::Tensor{};
  if (x.scalar_type() == torch::kBFloat16) {
    run_forward(forward_plan<c10::BFloat16>(out, x, residual, gamma, beta, o.num_groups(), o.eps()),
                x.size(0), layout);
  } else {
    run_forward(forward_plan(out, x, residual, gamma, beta, o.num_groups(), o.eps()), x.size(0),
                layout);
  }
  return out;
}

}  // namespace numeral
