#pragma once
// A small line-plot renderer for loss curves and per-digit probability curves: axes with 1-2-5
// (or decade) ticks, grid lines, title, axis labels, a legend to the right of the axes, and one
// Tableau-10 colour per series, lines 2 px wide.
#include <optional>
#include <string>
#include <vector>

#include "numeral/io/image.h"

namespace numeral {

// One curve: y[i] against x[i]. Non-finite points (and y <= 0 on a log axis) are skipped, which
// breaks the line there; an isolated point is drawn as a small square.
struct Series {
  std::string name;  // legend entry; no legend when every name is empty
  std::vector<double> x, y;
};

// What plot_lines draws and how big.
struct PlotOptions {
  std::string title, x_label, y_label;  // empty: not drawn
  bool log_y = false;                   // logarithmic y axis with decade ticks
  int width = 800, height = 500;        // pixels, at least 240 x 160
  std::optional<double> y_min, y_max;   // fixed ends of the y axis (default: fitted to the data)
};

// The colour of series i: Tableau-10 (blue, orange, green, red, purple, brown, pink, grey, olive,
// cyan), cycling after ten.
Rgb series_colour(size_t i);

// Tick values inside [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them; with log
// set, powers of ten (every n-th decade when there are many; 1-2-5 within a decade when the range
// spans less than two). lo < hi; both > 0 when log.
std::vector<double> nice_ticks(double lo, double hi, bool log = false, int target = 6);

// Renders the series as an RGB width x height line plot on white. Throws numeral::Error when
// `series` is empty, x and y differ in length, or the size is too small.
Image plot_lines(const std::vector<Series>& series, const PlotOptions& options = {});

}  // namespace numeral
