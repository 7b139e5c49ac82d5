// The training and sampling steps of the shipped model, the default-size model and the distilled
// student, against this machine's own fp32 GEMM rate. Prints one JSON object per line (the PyTorch
// reference, bench/reference.py, prints the same rows; bench/run.sh puts both in one table):
//   ./build/bench_step [--threads N] [--seconds S] [--device D] [--teacher FILE] [--student FILE]
//                      [--nchw]   (also each CPU row run NCHW throughout: "numeral nchw")
//                      [--bf16]   (also each sampling row in bfloat16, as `--precision bfloat16`
//                                  runs it: "numeral bf16"; its fraction is of the fp32 GEMM rate)
// On a CUDA device every call is synchronised before the clock is read, and the batches are larger
// (a GPU is not filled by 64 small images).
//   ./build/bench_step --dump FILE   (inputs and outputs of the shipped model, for reference.py)
#include <fmt/core.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "numeral/common/runtime.h"
#include "numeral/inference/generate.h"
#include "numeral/io/safetensors.h"
#include "numeral/model/unet.h"
#include "numeral/train/trainer.h"

namespace numeral {
namespace {

using Clock = std::chrono::steady_clock;

// Where the benchmark runs; CUDA work is asynchronous, so each timed call ends with a sync.
torch::Device g_device = torch::kCPU;

void sync() {
  if (g_device.is_cuda()) torch::cuda::synchronize();
}

// Batches of the training and the sampling rows: the CPU ones fit its caches (kCpuForwardBatch),
// the CUDA ones fill the GPU. bench/reference.py uses the same.
std::vector<int64_t> train_batches() {
  return g_device.is_cuda() ? std::vector<int64_t>{64, 512} : std::vector<int64_t>{64};
}
std::vector<int64_t> sample_batches() {
  return g_device.is_cuda() ? std::vector<int64_t>{64, 2048}
                            : std::vector<int64_t>{kCpuForwardBatch, 64};
}

// Seconds per call of `fn`: after two warm-up calls, the best of 3 repeats of at least seconds / 3
// each (the best filters out what else the machine did meanwhile).
double seconds_per_call(const std::function<void()>& fn, double seconds) {
  fn();
  fn();
  sync();
  double best = 1e30;
  for (int repeat = 0; repeat < 3; ++repeat) {
    int64_t calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds / 3 || calls < 2) {
      fn();
      sync();
      ++calls;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    best = std::min(best, elapsed / static_cast<double>(calls));
  }
  return best;
}

// The best fp32 matrix-multiply rate over square sizes 512 to 2048 (to 8192 on CUDA), in FLOP/s.
double gemm_rate(double seconds) {
  double best = 0;
  const auto on = torch::TensorOptions().device(g_device);
  const std::vector<int64_t> sizes = g_device.is_cuda() ? std::vector<int64_t>{2048, 4096, 8192}
                                                        : std::vector<int64_t>{512, 1024, 2048};
  for (const int64_t n : sizes) {
    const auto a = torch::randn({n, n}, on), b = torch::randn({n, n}, on);
    auto c = torch::empty({n, n}, on);
    const double s = seconds_per_call([&] { torch::mm_out(c, a, b); }, seconds / 3);
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / s);
  }
  return best;
}

torch::Tensor guidance_for(const UNet& model, int64_t batch) {
  return model->config().guidance_input
             ? torch::full({batch}, 0.25, torch::TensorOptions().device(g_device))
             : torch::Tensor();
}

// Inputs of a network call: batch images at mid-noise, labels half conditional and half null (as
// guidance lays a call out).
struct CallInputs {
  torch::Tensor x, t, labels;
  explicit CallInputs(const UNetConfig& c, int64_t batch) {
    x = torch::randn({batch, c.image_channels, c.image_size, c.image_size});
    t = torch::full({batch}, 50, torch::kLong);
    labels = torch::cat({torch::randint(0, c.num_classes, {batch - batch / 2}, torch::kLong),
                         torch::full({batch / 2}, kNullLabel, torch::kLong)});
  }
  CallInputs to(torch::Device device) const {
    CallInputs moved = *this;
    moved.x = x.to(device);
    moved.t = t.to(device);
    moved.labels = labels.to(device);
    return moved;
  }
};

nlohmann::json row(const std::string& impl, const std::string& model, const std::string& step,
                   const UNet& net, int64_t batch, double seconds, double flops_per_image,
                   double gemm) {
  const double images_per_s = static_cast<double>(batch) / seconds;
  return {{"impl", impl},
          {"model", model},
          {"step", step},
          {"batch", batch},
          {"params", parameter_count(*net)},
          {"gflop_per_image", flops_per_image / 1e9},
          {"ms_per_step", seconds * 1e3},
          {"images_per_s", images_per_s},
          {"gemm_fraction", images_per_s * flops_per_image / gemm}};
}

// With --nchw, each CPU row is followed by one of the same network run NCHW throughout
// (UNet::set_channels_last(false)), impl "numeral nchw": the two layouts compared in one run.
bool g_nchw = false;
bool g_bf16 = false;  // --bf16

// The layouts to time `model` in (as constructed): channels-last, and NCHW too with --nchw where
// they differ.
std::vector<bool> layouts(const UNet& model) {
  if (g_nchw && model->runs_channels_last(g_device)) return {true, false};
  return {true};
}

void bench_model(const std::string& name, UNet model, double seconds, double gemm) {
  const auto& c = model->config();
  const double flops = static_cast<double>(forward_flops(c));
  model->to(g_device);
  const std::vector<bool> variants = layouts(model);
  for (const int64_t batch : train_batches()) {  // training step: forward, MSE, backward, AdamW
    for (const bool channels_last : variants) {
      model->set_channels_last(channels_last);
      const std::string impl = channels_last ? "numeral" : "numeral nchw";
      model->train();
      torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-4));
      const CallInputs in = CallInputs(c, batch).to(g_device);
      const auto target = torch::randn_like(in.x);
      const auto w = guidance_for(model, batch);
      const double s = seconds_per_call(
          [&] {
            optimizer.zero_grad();
            auto loss = torch::mse_loss(model->forward(in.x, in.t, in.labels, w), target);
            loss.backward();
            optimizer.step();
          },
          seconds);
      fmt::print("{}\n", row(impl, name, "train", model, batch, s, 3 * flops, gemm).dump());
    }
  }
  model->eval();
  torch::NoGradGuard no_grad;
  for (const int64_t batch : sample_batches()) {  // sampling: one network call
    for (const bool channels_last : variants) {
      model->set_channels_last(channels_last);
      const std::string impl = channels_last ? "numeral" : "numeral nchw";
      const CallInputs in = CallInputs(c, batch).to(g_device);
      const auto w = guidance_for(model, batch);
      const double s = seconds_per_call([&] { model->forward(in.x, in.t, in.labels, w); }, seconds);
      fmt::print("{}\n", row(impl, name, "sample", model, batch, s, flops, gemm).dump());
      if (!g_bf16 || !channels_last) continue;
      const auto x = in.x.to(torch::kBFloat16);  // the network in bfloat16 (eps_model's cast)
      const double h = seconds_per_call([&] { model->forward(x, in.t, in.labels, w); }, seconds);
      fmt::print("{}\n", row("numeral bf16", name, "sample", model, batch, h, flops, gemm).dump());
    }
  }
  model->set_channels_last(true);
  std::fflush(stdout);
}

// The shipped model's output on fixed inputs, for bench/reference.py --check.
void dump(const std::string& teacher, const std::string& student, const std::string& path) {
  TensorFile file;
  for (const auto& [prefix, checkpoint] : std::vector<std::pair<std::string, std::string>>{
           {"teacher", teacher}, {"student", student}}) {
    if (checkpoint.empty()) continue;
    const TrainedModel m = load_trained_model(checkpoint, torch::kCPU);
    torch::manual_seed(0);
    const CallInputs in(m.config.model, 8);
    const auto t = torch::tensor({0, 10, 25, 50, 60, 75, 90, 99}, torch::kLong);
    const auto w = m.config.model.guidance_input ? torch::linspace(0, 2, 8) : torch::Tensor();
    torch::NoGradGuard no_grad;
    UNet net = m.model;
    file.tensors[prefix + ".x"] = in.x;
    file.tensors[prefix + ".t"] = t;
    file.tensors[prefix + ".labels"] = in.labels;
    if (w.defined()) file.tensors[prefix + ".w"] = w;
    file.tensors[prefix + ".out"] = net->forward(in.x, t, in.labels, w);
  }
  save_safetensors(path, file);
}

int run(int argc, char** argv) {
  int threads = 0;
  double seconds = 3;
  std::string teacher = "models/mnist.safetensors", student, dump_path;
  g_device = select_device("cpu");
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--nchw" || flag == "--bf16") {
      (flag == "--nchw" ? g_nchw : g_bf16) = true;
      --i;
      continue;
    }
    if (i + 1 == argc) throw std::runtime_error("bench_step: " + flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--threads")
      threads = std::stoi(value);
    else if (flag == "--seconds")
      seconds = std::stod(value);
    else if (flag == "--teacher")
      teacher = value;
    else if (flag == "--student")
      student = value;
    else if (flag == "--dump")
      dump_path = value;
    else if (flag == "--device")
      g_device = select_device(value);
    else
      throw std::runtime_error("bench_step: unknown flag " + flag);
  }
  const int used = configure_threads(threads);
  const bool kept = configure_allocator();
  if (!dump_path.empty()) {
    dump(teacher, student, dump_path);
    return 0;
  }
  torch::manual_seed(0);
  const double gemm = gemm_rate(seconds);
  fmt::print("{}\n",
             nlohmann::json{{"impl", "numeral"},
                            {"gemm_gflops", gemm / 1e9},
                            {"threads", used},
                            {"device", g_device.str()},
                            {"malloc", kept ? "keep" : "system"},
                            {"torch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR,
                                                  TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}}
                 .dump());
  bench_model("shipped (32,32,64)", load_trained_model(teacher, torch::kCPU).model, seconds, gemm);
  bench_model("default (64,64,128)", UNet(UNetConfig{}), seconds, gemm);
  if (!student.empty()) {
    bench_model("student (32,32,64)", load_trained_model(student, torch::kCPU).model, seconds,
                gemm);
  }
  return 0;
}

}  // namespace
}  // namespace numeral

int main(int argc, char** argv) {
  try {
    return numeral::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_step: {}\n", e.what());
    return 1;
  }
}
