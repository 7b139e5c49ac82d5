#include "numeral/common/runtime.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "numeral/common/error.h"

namespace numeral {
namespace {

// Finds the shared object in this process whose path contains `needle` (via /proc/self/maps).
std::string loaded_library(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find(needle) != std::string::npos) return path;
  }
  return "";
}

std::string describe_blas(int* threads) {
  // OpenBLAS exports these; the reference BLAS does not.
  using GetInt = int (*)();
  using GetStr = char* (*)();
  auto get_threads = reinterpret_cast<GetInt>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  auto get_config = reinterpret_cast<GetStr>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  std::string path = loaded_library("libblas");
  if (path.empty()) path = loaded_library("libopenblas");
  if (path.empty()) path = loaded_library("libmkl");
  std::error_code ec;
  const std::string real = path.empty() ? "" : std::filesystem::canonical(path, ec).string();
  if (get_threads) {
    *threads = get_threads();
    std::string config = get_config ? get_config() : "OpenBLAS";
    return fmt::format("{} at {}", config, real.empty() ? path : real);
  }
  *threads = -1;
  if (real.empty()) return "unknown (no BLAS library loaded)";
  return fmt::format("reference BLAS at {} (slow: install libopenblas0-pthread)", real);
}

}  // namespace

torch::Device select_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    NUMERAL_CHECK(torch::cuda::is_available(),
                  "--device {}: CUDA is not available in this build or on this machine", name);
    try {
      return torch::Device(name);
    } catch (const std::exception&) {
      fail("--device {}: expected cuda or cuda:N", name);
    }
  }
  fail("--device {}: expected auto, cpu, cuda or cuda:N", name);
}

int cpu_count() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

bool configure_allocator() {
  const char* choice = std::getenv("NUMERAL_MALLOC");
  if (choice && std::string(choice) == "system") return false;
  NUMERAL_CHECK(!choice || std::string(choice) == "keep" || std::string(choice).empty(),
                "NUMERAL_MALLOC={}: expected keep (the default) or system", choice);
  // Every allocation comes from the heap rather than a fresh mmap (M_MMAP_MAX 0), and freed heap
  // is not trimmed back below 1 GiB. A mmap threshold alone is not enough: glibc caps it at
  // 32 MiB, and the default-size model's activations at the CPU forward batch of 256 are 103 MB,
  // so each call mapped them afresh and ran at a third of the speed of calls of 64 (BENCHMARKS.md,
  // 2026-12-07). The threshold stays set: removing it slowed the 32-channel model's batch-256 calls
  // by about a tenth (bench_step, two alternating runs each, 2026-12-07), though nothing is mapped.
  // One arena: threads other than the main one (numeral serve's generation worker) would each get
  // their own, whose heaps glibc unmaps as they empty whatever the trim threshold, and a batch of
  // 16-digit requests then ran several times slower than `numeral sample` (BENCHMARKS.md).
  constexpr int kMmapThreshold = 32 << 20;
  constexpr int kTrimThreshold = 1 << 30;
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
         mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1 && mallopt(M_ARENA_MAX, 1) == 1;
}

int configure_threads(int threads) {
  NUMERAL_CHECK(threads >= 0 && threads <= cpu_count(),
                "threads {}: expected 0 (one per CPU) to {}, the CPUs of this machine", threads,
                cpu_count());
  torch::set_num_threads(threads > 0 ? threads : cpu_count());
  // OpenBLAS keeps its own pool (a core's worth of busy-waiting per thread, seen as a second
  // thread at 60% CPU in `--threads 1` training): hold it to the same count.
  using SetInt = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetInt>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas(torch::get_num_threads());
  }
  return torch::get_num_threads();
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.numeral_version = NUMERAL_VERSION;
  info.torch_version =
      fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
  if (torch::cuda::is_available()) {
    info.device = fmt::format("CUDA ({} device(s))", torch::cuda::device_count());
  } else {
    info.device = "CPU (no CUDA device)";
  }
  info.torch_threads = torch::get_num_threads();
  // A matrix product makes LibTorch load its BLAS before we look for it.
  auto a = torch::ones({64, 64});
  (void)a.mm(a);
  info.blas = describe_blas(&info.blas_threads);
  const std::string config = torch::show_config();
  const auto pos = config.find("CPU capability usage: ");
  if (pos != std::string::npos) {
    const auto start = pos + std::string("CPU capability usage: ").size();
    info.cpu_capability = config.substr(start, config.find('\n', start) - start);
  }
  return info;
}

}  // namespace numeral
