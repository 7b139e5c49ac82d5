// A probe, not part of the build: oneDNN's direct convolution (what LibTorch runs for our 3x3
// convolutions) against its Winograd convolution, forward inference, f32, batch 256, at the
// U-Net's shapes; and what converting channels-last activations to and from the blocked layout
// Winograd needs (nChw16c) costs. Winograd refuses channels-last memory, so a Winograd path would
// pay that conversion around every convolution. BENCHMARKS.md, "A lead: Winograd convolutions".
//
//   sudo apt-get install libdnnl-dev   # the headers of the oneDNN that Debian's LibTorch links
//   g++ -O2 -std=c++17 bench/winograd_probe.cpp -ldnnl -o /tmp/winograd_probe
//   OMP_NUM_THREADS=2 /tmp/winograd_probe
#include <chrono>
#include <cstdio>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::algorithm;
using dnnl::memory;
using Tag = memory::format_tag;

constexpr int kBatch = 256;
constexpr double kSeconds = 1.5;  // per measurement, after three warm-up runs

// Mean seconds per call of `f` over about kSeconds.
template <class F>
double time_it(F&& f) {
  for (int i = 0; i < 3; ++i) f();
  int reps = 0;
  double elapsed = 0;
  const auto start = std::chrono::steady_clock::now();
  while (elapsed < kSeconds) {
    f();
    ++reps;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return elapsed / reps;
}

// One 3x3, stride-1, pad-1 convolution C -> K at HxH with algorithm `alg` and the layouts oneDNN
// picks; seconds per call, or -1 when oneDNN has no implementation. `impl` names the kernel.
double convolution(dnnl::engine& engine, dnnl::stream& stream, int C, int K, int H, algorithm alg,
                   std::string& impl) {
  const memory::dims src{kBatch, C, H, H}, weights{K, C, 3, 3}, bias{K}, dst{kBatch, K, H, H};
  const memory::dims stride{1, 1}, pad{1, 1};
  const auto f32 = memory::data_type::f32;
  dnnl::convolution_forward::primitive_desc pd;
  try {
    const dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, alg, memory::desc(src, f32, Tag::any),
        memory::desc(weights, f32, Tag::any), memory::desc(bias, f32, Tag::x),
        memory::desc(dst, f32, Tag::any), stride, pad, pad);
    pd = dnnl::convolution_forward::primitive_desc(desc, engine);
  } catch (const dnnl::error& e) {
    impl = e.what();
    return -1;
  }
  impl = pd.impl_info_str();
  memory s(pd.src_desc(), engine), w(pd.weights_desc(), engine), b(pd.bias_desc(), engine),
      d(pd.dst_desc(), engine);
  for (memory* m : {&s, &w, &b}) {
    auto* p = static_cast<float*>(m->get_data_handle());
    const size_t n = m->get_desc().get_size() / sizeof(float);
    for (size_t i = 0; i < n; ++i) p[i] = 0.01f * static_cast<float>((i * 7919) % 200) - 1.0f;
  }
  dnnl::convolution_forward conv(pd);
  const std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, d}};
  return time_it([&] {
    conv.execute(stream, args);
    stream.wait();
  });
}

// Seconds for channels-last -> nChw16c -> channels-last of a [kBatch, C, H, H] tensor.
double round_trip(dnnl::engine& engine, dnnl::stream& stream, int C, int H) {
  const memory::dims dims{kBatch, C, H, H};
  memory nhwc({dims, memory::data_type::f32, Tag::nhwc}, engine),
      blocked({dims, memory::data_type::f32, Tag::nChw16c}, engine);
  dnnl::reorder to(nhwc, blocked), back(blocked, nhwc);
  return time_it([&] {
    to.execute(stream, nhwc, blocked);
    back.execute(stream, blocked, nhwc);
    stream.wait();
  });
}

}  // namespace

int main() {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  struct Shape {
    int C, K, H;
  };
  // The shipped model's and the student's convolutions (widths 32, 32, 64 at 28, 14 and 7 pixels;
  // the decoder's inputs carry the skip connection's channels too).
  const std::vector<Shape> shapes = {{32, 32, 28}, {64, 32, 28}, {32, 32, 14}, {64, 64, 14},
                                     {96, 64, 14}, {64, 64, 7},  {128, 64, 7}};
  std::printf("batch %d, 3x3 convolutions, forward inference, f32\n", kBatch);
  for (const Shape& s : shapes) {
    std::string direct_impl, wino_impl;
    const double direct =
        convolution(engine, stream, s.C, s.K, s.H, algorithm::convolution_direct, direct_impl);
    const double wino =
        convolution(engine, stream, s.C, s.K, s.H, algorithm::convolution_winograd, wino_impl);
    // Winograd with channels-last activations: the input's and the output's conversions.
    const double convert =
        (round_trip(engine, stream, s.C, s.H) + round_trip(engine, stream, s.K, s.H)) / 2;
    const double gflop = 2.0 * kBatch * s.K * s.H * s.H * s.C * 9 / 1e9;
    std::printf(
        "C %3d -> K %3d at %2dx%-2d  direct %6.2f ms (%4.0f GFLOP/s, %s)  winograd %6.2f ms (%s)  "
        "x%.2f; with layout conversions %6.2f ms, x%.2f\n",
        s.C, s.K, s.H, s.H, direct * 1e3, gflop / direct, direct_impl.c_str(), wino * 1e3,
        wino_impl.c_str(), direct / wino, (wino + convert) * 1e3, direct / (wino + convert));
  }
}
