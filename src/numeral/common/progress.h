#pragma once
// A live progress bar on stderr (bar, counts, rate, ETA and extra fields) when stderr is a
// terminal; silent otherwise, so logs and CI output stay clean.
#include <chrono>
#include <cstdint>
#include <string>

namespace numeral {

// Draws "label [#####.....] done/total  fields  rate unit/s  ETA h:mm:ss", at most ~10 times a
// second.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();
  // Sets progress to `done` and the extra fields (e.g. "loss 0.0412"). `in_progress` counts the
  // part of the next items already done (e.g. 0.4 x a batch of 256 images at step 8 of 20): it
  // moves the bar, the rate and the ETA before the next item completes.
  void update(int64_t done, const std::string& fields = "", double in_progress = 0);
  // Draws the final state and ends the line.
  void finish(const std::string& fields = "");
  // Whether bars are drawn (stderr is a terminal and NUMERAL_PROGRESS is not 0).
  static bool enabled();

 private:
  void draw(const std::string& fields, bool force);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  double in_progress_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Formats seconds as h:mm:ss or m:ss.
std::string format_duration(double seconds);

}  // namespace numeral
