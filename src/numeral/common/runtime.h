#pragma once
// The machine numeral runs on: device choice, threads, the BLAS LibTorch actually calls.
#include <torch/types.h>

#include <string>

namespace numeral {

// Resolves "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N" to a device;
// throws numeral::Error for anything else or for CUDA on a machine without it.
torch::Device select_device(const std::string& name);

// The CPUs this machine has (at least 1).
int cpu_count();

// Sets LibTorch's intra-op threads (0 = one per core) and returns the number in use. More threads
// than CPUs only make the threads wait for each other, so they are refused.
int configure_threads(int threads);

// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.
// LibTorch frees every activation after each network call; with glibc's defaults each large
// buffer is a fresh mmap, so each call pays page faults and zeroing: 100 digits (DDIM 25, shipped
// model, one thread) took 58 s of CPU, 24 s of it in the kernel, against 18 s (5 s) with this
// (BENCHMARKS.md, "Allocator"). Call once at start-up; `NUMERAL_MALLOC=system` leaves glibc as it
// is (for comparisons). Returns whether it changed anything.
bool configure_allocator();

// What `numeral info` prints about the runtime.
struct RuntimeInfo {
  std::string numeral_version;
  std::string torch_version;
  std::string device;     // "CPU" or "CUDA: <name>"
  int torch_threads = 0;  // at::get_num_threads()
  std::string blas;       // e.g. "OpenBLAS 0.3.21 (pthread) at /usr/lib/.../libblas.so.3"
  int blas_threads = -1;  // -1 when the BLAS cannot say
  std::string cpu_capability;
};

// Gathers RuntimeInfo; loads the BLAS by running one small matrix product first.
RuntimeInfo runtime_info();

}  // namespace numeral
