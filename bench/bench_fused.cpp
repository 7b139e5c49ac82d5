// The fused GroupNorm + GELU (model/fused.h) against LibTorch's separate layers, on one activation
// tensor of a 28x28 level: with the residual at the CPU forward batch (a ResBlock's second half
// while sampling), and forward plus backward at the training batch (each GroupNorm + GELU of a
// training step).
//   ./build/bench_fused --benchmark_min_time=2
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "numeral/common/runtime.h"
#include "numeral/model/fused.h"

namespace numeral {
namespace {

// Args: {kernel (0 = torch::gelu(norm(x)) + r, 1 = group_norm_gelu_out, 2 = the same on
// channels-last tensors), channels, batch, threads}.
void BM_GroupNormGelu(benchmark::State& state) {
  const bool fused = state.range(0) >= 1;
  const auto layout =
      state.range(0) == 2 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const int64_t channels = state.range(1), batch = state.range(2);
  torch::set_num_threads(static_cast<int>(state.range(3)));
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  torch::nn::GroupNorm norm(8, channels);
  const auto x = torch::randn({batch, channels, 28, 28}).contiguous(layout);
  const auto residual = torch::randn_like(x);
  auto out = torch::empty_like(x);
  for (auto _ : state) {
    if (fused) {
      benchmark::DoNotOptimize(group_norm_gelu_out(out, x, norm, residual).data_ptr());
    } else {
      benchmark::DoNotOptimize((torch::gelu(norm(x)) + residual).data_ptr());
    }
  }
  state.counters["Melem/s"] = benchmark::Counter(
      static_cast<double>(x.numel() * state.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_GroupNormGelu)
    ->ArgsProduct({{0, 1, 2}, {32, 64}, {64, 256}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Forward and backward of gelu(norm(x)) with autograd. Args: {fused (0 = the two layers,
// 1 = group_norm_gelu), channels, batch, threads}.
void BM_GroupNormGeluTraining(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  const int64_t channels = state.range(1), batch = state.range(2);
  torch::set_num_threads(static_cast<int>(state.range(3)));
  torch::manual_seed(0);
  torch::nn::GroupNorm norm(8, channels);
  const auto x = torch::randn({batch, channels, 28, 28}).requires_grad_();
  const auto upstream = torch::randn_like(x);
  for (auto _ : state) {
    const auto y = fused ? group_norm_gelu(x, norm) : torch::gelu(norm(x));
    auto grads = torch::autograd::grad({y}, {x, norm->weight, norm->bias}, {upstream});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  }
  state.counters["Melem/s"] = benchmark::Counter(
      static_cast<double>(x.numel() * state.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_GroupNormGeluTraining)
    ->ArgsProduct({{0, 1}, {32, 64}, {64}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace numeral

int main(int argc, char** argv) {
  // As the numeral binary does: freed memory stays with the process.
  numeral::configure_allocator();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
