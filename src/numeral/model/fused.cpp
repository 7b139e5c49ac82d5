#include "numeral/model/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

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

struct Plan {
  const float* x;
  float* out;
  const float* residual;                          // null: nothing added
  const float* gamma;                             // null: 1
  const float* beta;                              // null: 0
  int64_t x_stride, out_stride, residual_stride;  // between samples, in floats
  int64_t channels, groups, pixels;               // C, G, H * W
  double eps;
};

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
  mean = s / static_cast<double>(n);
  const double var = std::max(0.0, q / static_cast<double>(n) - mean * mean);
  rstd = 1.0 / std::sqrt(var + eps);
}

inline __attribute__((always_inline)) float gelu_of(float x, float scale, float shift) {
  constexpr float kRsqrt2 = 0.70710678118654752f;
  const float v = x * scale + shift;
  return 0.5f * v * (1.0f + erf_rational(v * kRsqrt2));
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
  for (int64_t c = 0; c < per_group; ++c) {
    const double gamma = p.gamma ? p.gamma[first + c] : 1.0;
    const double beta = p.beta ? p.beta[first + c] : 0.0;
    const double scale = rstd * gamma;
    const int64_t at = c * p.pixels;
    normalize_gelu(x + at, out + at, r ? r + at : nullptr, p.pixels, static_cast<float>(scale),
                   static_cast<float>(beta - mean * scale));
  }
}

bool samples_contiguous(const torch::Tensor& t) {
  return t.dim() == 4 && t.stride(3) == 1 && t.stride(2) == t.size(3) &&
         t.stride(1) == t.size(2) * t.size(3);
}

}  // namespace

bool fusable_group_norm_gelu(const torch::Tensor& x) {
  return !torch::GradMode::is_enabled() && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && samples_contiguous(x);
}

torch::Tensor group_norm_gelu_out(const torch::Tensor& out, const torch::Tensor& x,
                                  const torch::nn::GroupNorm& norm, const torch::Tensor& residual) {
  const auto& o = norm->options;
  NUMERAL_CHECK(fusable_group_norm_gelu(x) && fusable_group_norm_gelu(out),
                "group_norm_gelu_out: expected float32 CPU [B, C, H, W] tensors with contiguous "
                "samples, outside autograd (got {} and {})",
                x.sizes(), out.sizes());
  NUMERAL_CHECK(out.sizes() == x.sizes() && (!residual.defined() || residual.sizes() == x.sizes()),
                "group_norm_gelu_out: shapes differ ({}, out {}, residual {})", x.sizes(),
                out.sizes(), residual.defined() ? residual.sizes() : x.sizes());
  NUMERAL_CHECK(!residual.defined() || fusable_group_norm_gelu(residual),
                "group_norm_gelu_out: the residual must be float32 with contiguous samples");
  NUMERAL_CHECK(x.size(1) == o.num_channels() && x.size(1) % o.num_groups() == 0,
                "group_norm_gelu_out: {} channels for a GroupNorm of {} channels in {} groups",
                x.size(1), o.num_channels(), o.num_groups());
  const auto gamma = o.affine() ? norm->weight.contiguous() : torch::Tensor{};
  const auto beta = o.affine() ? norm->bias.contiguous() : torch::Tensor{};
  Plan p;
  p.x = x.data_ptr<float>();
  p.out = out.data_ptr<float>();
  p.residual = residual.defined() ? residual.data_ptr<float>() : nullptr;
  p.gamma = gamma.defined() ? gamma.data_ptr<float>() : nullptr;
  p.beta = beta.defined() ? beta.data_ptr<float>() : nullptr;
  p.x_stride = x.stride(0);
  p.out_stride = out.stride(0);
  p.residual_stride = residual.defined() ? residual.stride(0) : 0;
  p.channels = x.size(1);
  p.groups = o.num_groups();
  p.pixels = x.size(2) * x.size(3);
  p.eps = o.eps();
  const int64_t samples = x.size(0);
  // ATen's OpenMP team (see CMakeLists.txt): its worker threads wait for work between ATen's
  // kernels, so another pool's threads would compete with them for the cores.
  at::parallel_for(0, samples * p.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) run_group(p, i / p.groups, i % p.groups);
  });
  return out;
}

}  // namespace numeral
