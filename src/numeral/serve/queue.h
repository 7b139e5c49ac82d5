#pragma once
// The server's one generation worker and its bounded queue. Requests wait in order; the worker
// takes the first and every waiting request that can share its forward pass (the same sampler and
// w, up to one batch of images), samples them together, and hands each its own images and step
// frames. A full queue refuses at once (HTTP 503), never growing threads or memory without bound.
#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "numeral/inference/pipeline.h"

namespace numeral::serve {

// One request in the queue, shared by the HTTP thread that waits for it and the worker.
struct Job {
  GenerateRequest request;  // resolved
  int64_t images = 0;
  // Called on the worker for each sampler step with this job's slice of x_t and the x_0 estimate;
  // may be empty. Throwing from it cancels the job.
  std::function<void(const SamplerStep& own)> on_step;
  // Called on the worker when the job ends (result or error set), before wait() returns.
  std::function<void(Job&)> on_done;
  std::atomic<bool> cancelled{false};  // set by the HTTP side when its client went away

  // Set once by the worker, then `done` is signalled.
  torch::Tensor result;      // [N, C, H, W] in [-1, 1]
  std::string error;         // non-empty when generation failed
  double seconds = 0;        // from the start of its batch to its end
  int64_t batched_with = 0;  // requests in its forward pass (itself included)

  // Blocks until the worker has finished (or dropped) this job.
  void wait();
  // Runs on_done, then wakes wait().
  void finish();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool finished_ = false;
};

class GenerationQueue {
 public:
  // `limit`: jobs waiting or running at once; more are refused.
  GenerationQueue(const Pipeline& pipeline, int64_t limit);
  ~GenerationQueue();  // drains: every accepted job is finished before the worker stops
  GenerationQueue(const GenerationQueue&) = delete;
  GenerationQueue& operator=(const GenerationQueue&) = delete;

  // Enqueues a job; false when the queue is full or closed (the caller answers 503).
  bool submit(const std::shared_ptr<Job>& job);
  // Stops accepting jobs; the ones accepted still run. Returns when all are finished.
  void drain();

  int64_t size() const;  // waiting + running
  int64_t limit() const { return limit_; }

 private:
  void work();
  void run_batch(std::vector<std::shared_ptr<Job>>& batch);

  const Pipeline& pipeline_;
  const int64_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::shared_ptr<Job>> waiting_;
  int64_t running_ = 0;
  bool closed_ = false;
  std::thread worker_;
};

}  // namespace numeral::serve
