// Throughput of the hot paths on this machine, for a few U-Net widths: one training step (forward,
// backward, AdamW) and one sampling step (one network call under no_grad, half conditional and
// half null labels as guidance makes them). Reports images per second; pick with
// --benchmark_filter.
//   ./build/bench_unet --benchmark_min_time=5
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/model/unet.h"

namespace numeral {
namespace {

UNetConfig config_for(int64_t widths_id) {
  UNetConfig c;
  switch (widths_id) {
    case 0:
      c.channels = {64, 64, 128};
      break;  // the default (reference design)
    case 1:
      c.channels = {32, 64, 128};
      break;
    default:
      c.channels = {32, 32, 64};
      break;  // CPU-sized
  }
  return c;
}

void BM_TrainStep(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(state.range(2)));
  torch::manual_seed(0);
  const auto config = config_for(state.range(0));
  const int64_t batch = state.range(1);
  UNet model(config);
  GaussianDiffusion diffusion(DiffusionConfig{}, torch::kCPU);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto x0 = torch::rand({batch, 1, 28, 28}) * 2 - 1;
  auto labels = torch::randint(0, 10, {batch}, torch::kLong);
  ModelFn fn = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    return model->forward(x, t, y);
  };
  for (auto _ : state) {
    auto t = torch::randint(0, diffusion.T(), {batch}, torch::kLong);
    auto noise = torch::randn_like(x0);
    optimizer.zero_grad();
    auto loss = diffusion.training_loss(fn, x0, labels, t, noise);
    loss.backward();
    optimizer.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.counters["params_M"] = parameter_count(*model) / 1e6;
}

void BM_SampleStep(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(state.range(2)));
  torch::manual_seed(0);
  const auto config = config_for(state.range(0));
  const int64_t call = state.range(1);  // images per network call: --forward-batch
  UNet model(config);
  model->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({call, 1, 28, 28});
  auto t = torch::full({call}, 50, torch::kLong);
  // Guidance's layout: conditional labels, then as many null labels.
  auto labels = torch::cat({torch::randint(0, 10, {call - call / 2}, torch::kLong),
                            torch::full({call / 2}, kNullLabel, torch::kLong)});
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x, t, labels));
  state.counters["img_steps/s"] = benchmark::Counter(
      static_cast<double>(call * state.iterations()), benchmark::Counter::kIsRate);
}

// Args: {widths (0 = 64,64,128; 1 = 32,64,128; 2 = 32,32,64), batch, threads}. The sampling
// step's batch is the network call size, which picks kCpuForwardBatch (generate/generate.h).
BENCHMARK(BM_TrainStep)
    ->ArgsProduct({{0, 1, 2}, {128}, {2}})
    ->Args({2, 64, 2})
    ->Args({2, 128, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_SampleStep)
    ->ArgsProduct({{0, 2}, {8, 16, 32, 64, 128, 512}, {2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace numeral

BENCHMARK_MAIN();
