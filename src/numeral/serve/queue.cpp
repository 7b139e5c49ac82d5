#include "numeral/serve/queue.h"

#include <chrono>

#include "numeral/common/error.h"

namespace numeral::serve {
namespace {

// Thrown from the observer to abandon a batch whose clients have all gone.
struct AllCancelled {};

}  // namespace

void Job::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return finished_; });
}

void Job::finish() {
  if (on_done) {
    try {
      on_done(*this);
    } catch (...) {  // a stream that cannot take its last event: nothing left to tell
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
  }
  cv_.notify_all();
}

GenerationQueue::GenerationQueue(const Pipeline& pipeline, int64_t limit)
    : pipeline_(pipeline), limit_(limit) {
  NUMERAL_CHECK(limit >= 1, "serve: the queue limit must be at least 1, got {}", limit);
  worker_ = std::thread([this] { work(); });
}

GenerationQueue::~GenerationQueue() {
  drain();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool GenerationQueue::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || static_cast<int64_t>(waiting_.size()) + running_ >= limit_) return false;
    waiting_.push_back(job);
  }
  cv_.notify_all();
  return true;
}

void GenerationQueue::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  closed_ = true;
  cv_.notify_all();
  idle_cv_.wait(lock, [this] { return waiting_.empty() && running_ == 0; });
}

int64_t GenerationQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(waiting_.size()) + running_;
}

void GenerationQueue::work() {
  const int64_t batch_images = pipeline_.execution().batch_size;
  for (;;) {
    std::vector<std::shared_ptr<Job>> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return closed_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // closed and drained
      // The first job, then every waiting job that shares its forward pass, in order.
      int64_t images = 0;
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        const auto& job = *it;
        const bool first = batch.empty();
        if (job->cancelled) {  // its client left while it waited: drop it
          job->error = "cancelled: the client disconnected";
          job->finish();
          it = waiting_.erase(it);
          continue;
        }
        if (first || (Pipeline::can_share_batch(batch.front()->request, job->request) &&
                      images + job->images <= batch_images)) {
          images += job->images;
          batch.push_back(job);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      running_ = static_cast<int64_t>(batch.size());
    }
    if (!batch.empty()) run_batch(batch);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      running_ = 0;
    }
    idle_cv_.notify_all();
  }
}

void GenerationQueue::run_batch(std::vector<std::shared_ptr<Job>>& batch) {
  std::vector<GenerateRequest> requests;
  std::vector<int64_t> offsets;
  int64_t offset = 0;
  for (const auto& job : batch) {
    requests.push_back(job->request);
    offsets.push_back(offset);
    offset += job->images;
  }
  GenerateObserver observer;
  observer.on_step = [&](const StepEvent& e) {
    bool anyone = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      Job& job = *batch[i];
      if (job.cancelled) continue;
      if (job.on_step) {
        const SamplerStep own{e.step.index, e.step.steps, e.step.t,
                              e.step.x_t.slice(0, offsets[i], offsets[i] + job.images),
                              e.step.x0.slice(0, offsets[i], offsets[i] + job.images)};
        try {
          job.on_step(own);
        } catch (...) {
          job.cancelled = true;
          continue;
        }
      }
      anyone = true;
    }
    if (!anyone) throw AllCancelled{};
  };
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  std::vector<torch::Tensor> images;
  try {
    images = pipeline_.generate_together(requests, observer);
  } catch (const AllCancelled&) {
    error = "cancelled: the client disconnected";
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < batch.size(); ++i) {
    Job& job = *batch[i];
    if (error.empty()) job.result = images[i];
    job.error = error;
    job.seconds = seconds;
    job.batched_with = static_cast<int64_t>(batch.size());
    job.finish();
  }
}

}  // namespace numeral::serve
