// The fused GroupNorm + GELU + residual (model/fused.h) against LibTorch's separate layers, on one
// activation tensor of a 28x28 level at the CPU forward batch: the memory-bound work of a
// ResBlock's second half while sampling.
//   ./build/bench_fused --benchmark_min_time=2
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "numeral/common/runtime.h"
#include "numeral/model/fused.h"

namespace numeral {
namespace {

// Args: {fused (0 = torch::gelu(norm(x)) + r, 1 = group_norm_gelu_out), channels, batch, threads}.
void BM_GroupNormGelu(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  const int64_t channels = state.range(1), batch = state.range(2);
  torch::set_num_threads(static_cast<int>(state.range(3)));
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  torch::nn::GroupNorm norm(8, channels);
  const auto x = torch::randn({batch, channels, 28, 28});
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
    ->ArgsProduct({{0, 1}, {32, 64}, {64, 256}, {1, 2}})
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
