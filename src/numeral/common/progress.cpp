#include "numeral/common/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace numeral {

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && enabled() && done_ > 0) std::fputc('\n', stderr);
}

bool ProgressBar::enabled() {
  static const bool on = [] {
    const char* env = std::getenv("NUMERAL_PROGRESS");
    if (env && std::strcmp(env, "0") == 0) return false;
    if (env && std::strcmp(env, "1") == 0) return true;
    return ::isatty(STDERR_FILENO) == 1;
  }();
  return on;
}

void ProgressBar::update(int64_t done, const std::string& fields, double in_progress) {
  done_ = done;
  in_progress_ = std::max(0.0, in_progress);
  draw(fields, false);
}

void ProgressBar::finish(const std::string& fields) {
  draw(fields, true);
  if (enabled()) std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw(const std::string& fields, bool force) {
  if (!enabled()) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double progress =
      std::min(static_cast<double>(done_) + in_progress_, static_cast<double>(total_));
  const double rate = elapsed > 0 ? progress / elapsed : 0;
  const double eta = rate > 0 ? (static_cast<double>(total_) - progress) / rate : 0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * progress / static_cast<double>(total_));
  std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  fmt::print(stderr, "\r{} [{}] {}/{} {} {:.1f} {}/s {} {}\x1b[K", label_, bar, done_, total_,
             fields, rate, unit_, done_ >= total_ ? "took" : "ETA",
             format_duration(done_ >= total_ ? elapsed : eta));
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace numeral
