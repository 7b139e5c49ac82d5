#include "numeral/train/distributed.h"

// c10d's Gloo declarations are behind USE_C10D_GLOO: Debian's TorchConfig defines it, not every
// LibTorch's does.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "numeral/common/error.h"

namespace numeral {
namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(value, &end, 10);
  NUMERAL_CHECK(*end == '\0' && errno == 0, "{}={}: expected an integer", name, value);
  return parsed;
}

std::chrono::milliseconds to_millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::vector<uint8_t> to_bytes(const std::string& text) {
  return {text.begin(), text.end()};
}

// The first line of a library's error message (c10's carry a C++ stack trace after it).
std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

// The network device Gloo's pairs connect through: GLOO_SOCKET_IFNAME's interface if set, loopback
// when the whole group is on this machine, else the address this machine's hostname resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (master_addr == "127.0.0.1" || master_addr == "localhost") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Tensors flattened into contiguous buckets of at most `cap` bytes (a larger tensor is a bucket of
// its own), to run one collective per bucket.
struct Bucket {
  torch::Tensor flat;
  std::vector<torch::Tensor> members;
};
std::vector<Bucket> make_buckets(const std::vector<torch::Tensor>& tensors, int64_t cap) {
  std::vector<Bucket> buckets;
  std::vector<torch::Tensor> open;
  int64_t bytes = 0;
  auto close = [&] {
    if (open.empty()) return;
    std::vector<torch::Tensor> flat;
    for (const auto& t : open) flat.push_back(t.reshape({-1}));
    buckets.push_back({torch::cat(flat), open});
    open.clear();
    bytes = 0;
  };
  for (const auto& t : tensors) {
    NUMERAL_CHECK(t.defined(), "data parallel: an undefined tensor in a collective");
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    if (!open.empty() && (bytes + size > cap || t.scalar_type() != open.front().scalar_type() ||
                          t.device() != open.front().device())) {
      close();
    }
    open.push_back(t);
    bytes += size;
  }
  close();
  return buckets;
}

void unflatten(const Bucket& bucket) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : bucket.members) {
    t.copy_(bucket.flat.slice(0, offset, offset + t.numel()).view_as(t));
    offset += t.numel();
  }
}

}  // namespace

void DistOptions::validate() const {
  NUMERAL_CHECK(world_size >= 1, "world size {}: expected at least 1", world_size);
  NUMERAL_CHECK(rank >= 0 && rank < world_size, "rank {}: expected 0 to {} (world size {})", rank,
                world_size - 1, world_size);
  NUMERAL_CHECK(local_rank >= 0, "local rank {}: expected at least 0", local_rank);
  NUMERAL_CHECK(!master_addr.empty(), "master address: empty");
  NUMERAL_CHECK(master_port >= 1 && master_port <= 65535, "master port {}: expected 1 to 65535",
                master_port);
  NUMERAL_CHECK(backend == "auto" || backend == "gloo" || backend == "nccl",
                "dist backend '{}': expected auto, gloo or nccl", backend);
  NUMERAL_CHECK(timeout_s > 0, "dist timeout {}: expected more than 0 seconds", timeout_s);
}

DistOptions dist_options_from_environment(DistOptions d) {
  d.rank = env_int("RANK", d.rank);
  d.world_size = env_int("WORLD_SIZE", d.world_size);
  d.local_rank = env_int("LOCAL_RANK", d.local_rank);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) d.master_addr = addr;
  d.master_port = env_int("MASTER_PORT", d.master_port);
  return d;
}

std::string resolve_backend(const DistOptions& options, torch::Device device) {
  // This build's LibTorch collectives: Gloo, which also carries CUDA tensors (through the host).
  // NCCL needs a CUDA LibTorch built with it and is not compiled in yet.
  NUMERAL_CHECK(options.backend != "nccl",
                "--dist-backend nccl: this build of numeral has no NCCL backend; use gloo{}",
                device.is_cuda() ? " (it carries CUDA tensors through the host)" : "");
  return "gloo";
}

struct DataParallel::Impl {
  DistOptions options;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  // Waits for every collective; a failure means the group broke (a peer died or timed out).
  template <class Works>
  void wait_all(Works& works, const char* what) {
    try {
      for (auto& work : works) work->wait();
    } catch (const std::exception& e) {
      fail("rank {}: the group broke during {}: a peer stopped or timed out ({})", options.rank,
           what, first_line(e.what()));
    }
  }
};

DataParallel::DataParallel(const DistOptions& options, torch::Device device)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  impl_->backend = resolve_backend(options, device);
  const auto timeout = to_millis(options.timeout_s);
  const std::string where = fmt::format("{}:{}", options.master_addr, options.master_port);
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(options.master_port);
  store_options.isServer = options.rank == 0;
  store_options.waitWorkers = false;
  store_options.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
  } catch (const std::exception& e) {
    if (options.rank == 0) {
      fail("rank 0: cannot serve the group at {} ({}); choose another --master-port", where,
           first_line(e.what()));
    }
    fail("rank {}: rank 0 did not answer at {} within {} s ({})", options.rank, where,
         options.timeout_s, first_line(e.what()));
  }
  // Every rank registers, then waits for all: a missing rank is named, not just timed out on.
  const std::string joined = "numeral/joined/";
  try {
    impl_->store->set(joined + std::to_string(options.rank), to_bytes("1"));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::vector<int64_t> missing;
      for (int64_t r = 0; r < options.world_size; ++r) {
        if (!impl_->store->check({joined + std::to_string(r)})) missing.push_back(r);
      }
      if (missing.empty()) break;
      NUMERAL_CHECK(std::chrono::steady_clock::now() < deadline,
                    "rank {}: {} {} did not join the group at {} within {} s (world size {})",
                    options.rank, missing.size() == 1 ? "rank" : "ranks", fmt::join(missing, ", "),
                    where, options.timeout_s, options.world_size);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto group_options = c10d::ProcessGroupGloo::Options::create(timeout);
    group_options->devices.push_back(gloo_device(options.master_addr));
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl_->store),
        static_cast<int>(options.rank), static_cast<int>(options.world_size), group_options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank {}: joining the group at {} failed: {}", options.rank, where, first_line(e.what()));
  }
}

DataParallel::~DataParallel() = default;

int64_t DataParallel::rank() const {
  return impl_->options.rank;
}
int64_t DataParallel::world_size() const {
  return impl_->options.world_size;
}
const std::string& DataParallel::backend() const {
  return impl_->backend;
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  auto buckets = make_buckets(tensors, kBucketBytes);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  c10d::BroadcastOptions how;
  how.rootRank = 0;
  for (auto& bucket : buckets) {
    std::vector<at::Tensor> one{bucket.flat};
    works.push_back(impl_->group->broadcast(one, how));
  }
  impl_->wait_all(works, "a broadcast");
  for (const auto& bucket : buckets) unflatten(bucket);
}

void DataParallel::all_reduce_sum(const std::vector<torch::Tensor>& tensors) {
  auto buckets = make_buckets(tensors, kBucketBytes);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& bucket : buckets) {
    std::vector<at::Tensor> one{bucket.flat};
    works.push_back(impl_->group->allreduce(one));
  }
  impl_->wait_all(works, "an all-reduce");
  for (const auto& bucket : buckets) unflatten(bucket);
}

void DataParallel::check_same(const std::string& what, const std::string& text) {
  const auto& o = impl_->options;
  const std::string prefix = "numeral/check/" + what + "/";
  std::vector<std::string> keys;
  for (int64_t r = 0; r < o.world_size; ++r) keys.push_back(prefix + std::to_string(r));
  std::vector<uint8_t> first;
  try {
    impl_->store->set(keys[o.rank], to_bytes(text));
    impl_->store->wait(keys, to_millis(o.timeout_s));
    first = impl_->store->get(keys[0]);
    for (int64_t r = 1; r < o.world_size; ++r) {
      NUMERAL_CHECK(impl_->store->get(keys[r]) == first,
                    "rank {}: rank {}'s {} differs from rank 0's; give every rank the same "
                    "command",
                    o.rank, r, what);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank {}: comparing the ranks' {} failed: {}", o.rank, what, first_line(e.what()));
  }
}

}  // namespace numeral
