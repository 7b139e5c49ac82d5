#pragma once
// Data-parallel training across processes and machines on c10d, PyTorch's distributed engine:
// rendezvous through a TCPStore on rank 0, collectives through ProcessGroupGloo. The trainer
// (train/trainer.h) uses a DataParallel to start every rank from rank 0's weights, to sum the
// gradients of each step's shards, and to agree on when to stop. c10d's headers stay in
// distributed.cpp.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace numeral {

// Where a process stands in a group, after torchrun's conventions (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT).
struct DistOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;  // the rank among this machine's processes: which GPU it takes
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string backend = "auto";  // gloo; nccl (CUDA builds with NCCL); auto: by the device
  double timeout_s = 300;        // for joining and for every collective
  bool enabled() const { return world_size > 1; }
  // Throws numeral::Error naming the value that is out of range.
  void validate() const;
};

// `defaults` with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT applied where they are
// set; a malformed value is an error naming the variable.
DistOptions dist_options_from_environment(DistOptions defaults = {});

// The backend a group uses on `device`: options.backend, or for "auto" gloo (NCCL where built).
std::string resolve_backend(const DistOptions& options, torch::Device device);

// This process's membership of a group of world_size processes.
class DataParallel {
 public:
  // Joins the group. Rank 0 serves the TCPStore at master_addr:master_port; every rank registers
  // there and waits for the others. A rank that has not arrived within the timeout makes every
  // waiting rank fail with one line naming the missing ranks.
  DataParallel(const DistOptions& options, torch::Device device);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  bool is_main() const { return rank() == 0; }
  const std::string& backend() const;

  // Copies rank 0's values into every rank's tensors, in place.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Sums the tensors over all ranks, in place: flattened into buckets of at most kBucketBytes,
  // all in flight at once. Undefined tensors are not allowed (pass zeros).
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors);
  // Checks that every rank passes the same `text` (e.g. its run config); throws naming `what` and
  // the first rank that differs from rank 0.
  void check_same(const std::string& what, const std::string& text);

  static constexpr int64_t kBucketBytes = 4 << 20;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace numeral
