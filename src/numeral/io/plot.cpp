#include "numeral/io/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "numeral/common/error.h"

namespace numeral {
namespace {

constexpr int kTextScale = 2;     // font units -> pixels for every text in a plot
constexpr int kPad = 12;          // space around and between the parts of a plot
constexpr int kTickLength = 5;    // pixels, outside the axes box
constexpr int kLineWidth = 2;     // pixels, for series lines
constexpr int kMarkerSize = 6;    // pixels, for isolated points
constexpr int kSwatchWidth = 24;  // pixels, the line sample in the legend
constexpr Rgb kFrame{60, 60, 60};
constexpr Rgb kGrid{228, 228, 228};

// Tableau-10, matplotlib's default cycle.
constexpr std::array<Rgb, 10> kTableau10{{{31, 119, 180},
                                          {255, 127, 14},
                                          {44, 160, 44},
                                          {214, 39, 40},
                                          {148, 103, 189},
                                          {140, 86, 75},
                                          {227, 119, 194},
                                          {127, 127, 127},
                                          {188, 189, 34},
                                          {23, 190, 207}}};

void set_pixel(Image& image, int x, int y, Rgb colour) {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  image.at(x, y, 0) = colour.r;
  image.at(x, y, 1) = colour.g;
  image.at(x, y, 2) = colour.b;
}

void fill_rect(Image& image, int x, int y, int w, int h, Rgb colour) {
  for (int yy = y; yy < y + h; ++yy) {
    for (int xx = x; xx < x + w; ++xx) set_pixel(image, xx, yy, colour);
  }
}

// The pixel rectangle [x0, x1] x [y0, y1] (inclusive) that data is drawn in.
struct Box {
  int x0, y0, x1, y1;
  bool contains(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

// Bresenham's line with a kLineWidth x kLineWidth brush, clipped to `clip`.
void draw_line(Image& image, int xa, int ya, int xb, int yb, Rgb colour, const Box& clip) {
  const int dx = std::abs(xb - xa), dy = -std::abs(yb - ya);
  const int sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1;
  int error = dx + dy;
  while (true) {
    for (int oy = 0; oy < kLineWidth; ++oy) {
      for (int ox = 0; ox < kLineWidth; ++ox) {
        if (clip.contains(xa + ox, ya + oy)) set_pixel(image, xa + ox, ya + oy, colour);
      }
    }
    if (xa == xb && ya == yb) break;
    const int e2 = 2 * error;
    if (e2 >= dy) {
      error += dy;
      xa += sx;
    }
    if (e2 <= dx) {
      error += dx;
      ya += sy;
    }
  }
}

// Liang-Barsky: clips the segment (xa, ya)-(xb, yb) to `box`; false if nothing is left.
bool clip_segment(double& xa, double& ya, double& xb, double& yb, const Box& box) {
  double t0 = 0.0, t1 = 1.0;
  const double dx = xb - xa, dy = yb - ya;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {xa - box.x0, box.x1 - xa, ya - box.y0, box.y1 - ya};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0.0) {
      if (q[i] < 0.0) return false;
      continue;
    }
    const double t = q[i] / p[i];
    if (p[i] < 0.0) {
      t0 = std::max(t0, t);
    } else {
      t1 = std::min(t1, t);
    }
  }
  if (t0 > t1) return false;
  const double x0 = xa + t0 * dx, y0 = ya + t0 * dy;
  xb = xa + t1 * dx;
  yb = ya + t1 * dy;
  xa = x0;
  ya = y0;
  return true;
}

// A tick label: fixed decimals fitting the step, or 1e-5 style for powers of ten far from 1.
std::string tick_label(double value, double step, bool log) {
  if (value == 0.0) return "0";
  if (log) {
    const int exponent = static_cast<int>(std::floor(std::log10(value) + 1e-9));
    if (exponent < -3 || exponent > 4) {
      const double mantissa = std::round(value / std::pow(10.0, exponent));
      return fmt::format("{}e{}", mantissa, exponent);
    }
    return fmt::format("{}", value);
  }
  if (std::abs(value) >= 1e6 || step < 1e-4) return fmt::format("{:.3g}", value);
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", value, decimals);
}

// One axis: its data range (log10 units on a log axis), ticks and their labels.
struct Axis {
  double lo = 0.0, hi = 1.0;
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;

  double unit(double value) const { return ((log ? std::log10(value) : value) - lo) / (hi - lo); }

  void set_ticks(int target) {
    ticks = log ? nice_ticks(std::pow(10.0, lo), std::pow(10.0, hi), true, target)
                : nice_ticks(lo, hi, false, target);
    labels.clear();
    const double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : (hi - lo);
    for (double t : ticks) labels.push_back(tick_label(t, step, log));
  }

  void keep_every(size_t n) {
    std::vector<double> kept_ticks;
    std::vector<std::string> kept_labels;
    for (size_t k = 0; k < ticks.size(); k += n) {
      kept_ticks.push_back(ticks[k]);
      kept_labels.push_back(labels[k]);
    }
    ticks = std::move(kept_ticks);
    labels = std::move(kept_labels);
  }

  int widest_label() const {
    int widest = 0;
    for (const std::string& label : labels)
      widest = std::max(widest, text_width(label, kTextScale));
    return widest;
  }
};

// Fits [lo, hi] to the finite values with a margin, honouring fixed ends.
void fit_range(Axis& axis, const std::vector<double>& values, double margin,
               std::optional<double> fixed_lo, std::optional<double> fixed_hi) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (values.empty()) {
    lo = 0.0;  // 0 .. 1, or 1 .. 10 on a log axis
    hi = 1.0;
  } else if (lo == hi) {
    const double half = axis.log ? 0.5 : std::max(0.5, std::abs(lo) * 0.1);
    lo -= half;
    hi += half;
  } else {
    const double extra = (hi - lo) * margin;
    lo -= extra;
    hi += extra;
  }
  if (fixed_lo) lo = axis.log ? std::log10(*fixed_lo) : *fixed_lo;
  if (fixed_hi) hi = axis.log ? std::log10(*fixed_hi) : *fixed_hi;
  if (!(hi > lo)) {
    if (fixed_lo && !fixed_hi) {
      hi = lo + 1.0;
    } else {
      lo = hi - 1.0;
    }
  }
  axis.lo = lo;
  axis.hi = hi;
}

// Renders `text` rotated a quarter turn counter-clockwise (reading upwards) on white.
Image rotated_text(const std::string& text) {
  Image flat(text_width(text, kTextScale), text_height(text, kTextScale), 1, kBackground);
  draw_text(flat, 0, 0, text, 0, kTextScale);
  Image turned(flat.height, flat.width, 1, kBackground);
  for (int y = 0; y < turned.height; ++y) {
    for (int x = 0; x < turned.width; ++x) turned.at(x, y) = flat.at(flat.width - 1 - y, x);
  }
  return turned;
}

}  // namespace

Rgb series_colour(size_t i) {
  return kTableau10[i % kTableau10.size()];
}

std::vector<double> nice_ticks(double lo, double hi, bool log, int target) {
  NUMERAL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi && target >= 1,
                "nice_ticks: expected finite lo < hi and target >= 1, got [{}, {}] and {}", lo, hi,
                target);
  std::vector<double> ticks;
  if (log) {
    NUMERAL_CHECK(lo > 0.0, "nice_ticks: a log axis needs lo > 0, got {}", lo);
    const double a = std::log10(lo), b = std::log10(hi);
    const int first = static_cast<int>(std::ceil(a - 1e-9)),
              last = static_cast<int>(std::floor(b + 1e-9));
    if (last - first >= 1) {
      const int every = std::max(1, (last - first + target - 1) / target);
      for (int d = first; d <= last; d += every) {
        ticks.push_back(d < 0 ? 1.0 / std::pow(10.0, -d) : std::pow(10.0, d));
      }
      return ticks;
    }
    for (int d = static_cast<int>(std::floor(a)); d <= last; ++d) {
      for (double mantissa : {1.0, 2.0, 5.0}) {
        const double v = d < 0 ? mantissa / std::pow(10.0, -d) : mantissa * std::pow(10.0, d);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
      }
    }
    if (ticks.size() >= 2) return ticks;
    return nice_ticks(lo, hi, false, target);  // less than a factor of 5: linear ticks
  }
  const double raw = (hi - lo) / target;
  const int exponent = static_cast<int>(std::floor(std::log10(raw)));
  const double fraction = raw / std::pow(10.0, exponent);
  const double mantissa = fraction < 1.5 ? 1.0 : fraction < 3.5 ? 2.0 : fraction < 7.5 ? 5.0 : 10.0;
  // k * mantissa * 10^exponent, dividing for negative exponents so 0.1 * 3 prints as 0.3.
  const auto value = [&](long long k) {
    return exponent < 0 ? k * mantissa / std::pow(10.0, -exponent)
                        : k * mantissa * std::pow(10.0, exponent);
  };
  const double step = value(1);
  const long long k_first = static_cast<long long>(std::ceil(lo / step - 1e-9));
  const long long k_last = static_cast<long long>(std::floor(hi / step + 1e-9));
  for (long long k = k_first; k <= k_last; ++k) ticks.push_back(value(k));
  return ticks;
}

Image plot_lines(const std::vector<Series>& series, const PlotOptions& options) {
  NUMERAL_CHECK(!series.empty(), "plot_lines: no series to plot");
  NUMERAL_CHECK(options.width >= 240 && options.height >= 160,
                "plot_lines: expected a size of at least 240x160, got {}x{}", options.width,
                options.height);
  NUMERAL_CHECK(!options.log_y || ((!options.y_min || *options.y_min > 0.0) &&
                                   (!options.y_max || *options.y_max > 0.0)),
                "plot_lines: a log y axis needs positive y_min and y_max");
  NUMERAL_CHECK(!(options.y_min && options.y_max) || *options.y_min < *options.y_max,
                "plot_lines: expected y_min < y_max, got {} and {}", *options.y_min,
                *options.y_max);
  bool has_legend = false;
  int widest_name = 0;
  std::vector<double> xs, ys;  // every drawable point, for the ranges
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    NUMERAL_CHECK(s.x.size() == s.y.size(), "plot_lines: series {} ('{}') has {} x but {} y", i,
                  s.name, s.x.size(), s.y.size());
    has_legend = has_legend || !s.name.empty();
    widest_name = std::max(widest_name, text_width(s.name, kTextScale));
    for (size_t j = 0; j < s.x.size(); ++j) {
      if (!std::isfinite(s.x[j]) || !std::isfinite(s.y[j]) || (options.log_y && s.y[j] <= 0.0)) {
        continue;
      }
      xs.push_back(s.x[j]);
      ys.push_back(options.log_y ? std::log10(s.y[j]) : s.y[j]);
    }
  }

  Axis x_axis, y_axis;
  y_axis.log = options.log_y;
  fit_range(x_axis, xs, 0.02, std::nullopt, std::nullopt);
  fit_range(y_axis, ys, 0.05, options.y_min, options.y_max);
  y_axis.set_ticks(std::clamp(options.height / 80, 3, 8));

  // Layout, outside in: title above; y label, y tick labels and ticks at the left; x ticks, tick
  // labels and x label below; the legend at the right.
  const int text_h = text_height("0", kTextScale);
  const int top = kPad + (options.title.empty() ? text_h / 2 : text_h + kPad);
  const int left = kPad + (options.y_label.empty() ? 0 : text_h + kPad) + y_axis.widest_label() +
                   kTickLength + 6;
  const int bottom =
      kTickLength + 6 + text_h + (options.x_label.empty() ? 0 : kPad + text_h) + kPad;
  const int legend_w = has_legend ? kSwatchWidth + 8 + widest_name + 2 * kPad : 0;
  int x_target = std::clamp(options.width / 130, 3, 8);
  x_axis.set_ticks(x_target);
  const int right = legend_w + std::max(kPad, text_width(x_axis.labels.back(), kTextScale) / 2 + 4);
  const Box box{left, top, options.width - right - 1, options.height - bottom - 1};
  NUMERAL_CHECK(box.x1 - box.x0 >= 40 && box.y1 - box.y0 >= 40,
                "plot_lines: {}x{} leaves no room for the axes; make the plot larger",
                options.width, options.height);
  // Fewer x ticks until their labels do not collide; on a very narrow plot, every n-th of them.
  const auto tick_spacing = [&] {
    return x_axis.ticks.size() < 2
               ? 1e9
               : (box.x1 - box.x0) * (x_axis.ticks[1] - x_axis.ticks[0]) / (x_axis.hi - x_axis.lo);
  };
  const int label_room = x_axis.widest_label() + 16;
  while (x_target > 2 && tick_spacing() < label_room) x_axis.set_ticks(--x_target);
  if (tick_spacing() < label_room) {
    x_axis.keep_every(static_cast<size_t>(std::ceil(label_room / tick_spacing())));
  }

  const auto to_px = [&](double x) { return box.x0 + x_axis.unit(x) * (box.x1 - box.x0); };
  const auto to_py = [&](double y) { return box.y1 - y_axis.unit(y) * (box.y1 - box.y0); };

  Image plot(options.width, options.height, Rgb{255, 255, 255});
  // Grid lines.
  for (double t : x_axis.ticks) {
    const int px = static_cast<int>(std::lround(to_px(t)));
    if (px > box.x0 && px < box.x1) fill_rect(plot, px, box.y0, 1, box.y1 - box.y0 + 1, kGrid);
  }
  for (double t : y_axis.ticks) {
    const int py = static_cast<int>(std::lround(to_py(t)));
    if (py > box.y0 && py < box.y1) fill_rect(plot, box.x0, py, box.x1 - box.x0 + 1, 1, kGrid);
  }

  // Series: segments between consecutive drawable points, clipped to the inside of the box.
  const Box inside{box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1};
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const Rgb colour = series_colour(i);
    const auto drawable = [&](size_t j) {
      return j < s.x.size() && std::isfinite(s.x[j]) && std::isfinite(s.y[j]) &&
             !(options.log_y && s.y[j] <= 0.0);
    };
    for (size_t j = 0; j < s.x.size(); ++j) {
      if (!drawable(j)) continue;
      const bool joined_before = j > 0 && drawable(j - 1);
      if (drawable(j + 1)) {
        double xa = to_px(s.x[j]), ya = to_py(s.y[j]);
        double xb = to_px(s.x[j + 1]), yb = to_py(s.y[j + 1]);
        if (clip_segment(xa, ya, xb, yb, inside)) {
          draw_line(plot, static_cast<int>(std::lround(xa)) - kLineWidth / 2,
                    static_cast<int>(std::lround(ya)) - kLineWidth / 2,
                    static_cast<int>(std::lround(xb)) - kLineWidth / 2,
                    static_cast<int>(std::lround(yb)) - kLineWidth / 2, colour, inside);
        }
      } else if (!joined_before) {
        const double px = to_px(s.x[j]), py = to_py(s.y[j]);
        if (px >= inside.x0 && px <= inside.x1 && py >= inside.y0 && py <= inside.y1) {
          const int x0 = static_cast<int>(std::lround(px)) - kMarkerSize / 2;
          const int y0 = static_cast<int>(std::lround(py)) - kMarkerSize / 2;
          for (int yy = y0; yy < y0 + kMarkerSize; ++yy) {
            for (int xx = x0; xx < x0 + kMarkerSize; ++xx) {
              if (inside.contains(xx, yy)) set_pixel(plot, xx, yy, colour);
            }
          }
        }
      }
    }
  }

  // Frame, ticks and tick labels.
  fill_rect(plot, box.x0, box.y0, box.x1 - box.x0 + 1, 1, kFrame);
  fill_rect(plot, box.x0, box.y1, box.x1 - box.x0 + 1, 1, kFrame);
  fill_rect(plot, box.x0, box.y0, 1, box.y1 - box.y0 + 1, kFrame);
  fill_rect(plot, box.x1, box.y0, 1, box.y1 - box.y0 + 1, kFrame);
  const int cap_h = 7 * kTextScale;  // digits are 7 font units tall
  for (size_t k = 0; k < x_axis.ticks.size(); ++k) {
    const int px = static_cast<int>(std::lround(to_px(x_axis.ticks[k])));
    fill_rect(plot, px, box.y1 + 1, 1, kTickLength, kFrame);
    draw_text(plot, px - text_width(x_axis.labels[k], kTextScale) / 2, box.y1 + kTickLength + 6,
              x_axis.labels[k], 0, kTextScale);
  }
  for (size_t k = 0; k < y_axis.ticks.size(); ++k) {
    const int py = static_cast<int>(std::lround(to_py(y_axis.ticks[k])));
    fill_rect(plot, box.x0 - kTickLength, py, kTickLength, 1, kFrame);
    draw_text(plot, box.x0 - kTickLength - 6 - text_width(y_axis.labels[k], kTextScale),
              py - cap_h / 2, y_axis.labels[k], 0, kTextScale);
  }

  // Axis labels and title.
  if (!options.x_label.empty()) {
    draw_text(plot, (box.x0 + box.x1 - text_width(options.x_label, kTextScale)) / 2,
              options.height - kPad - text_h, options.x_label, 0, kTextScale);
  }
  if (!options.y_label.empty()) {
    const Image label = rotated_text(options.y_label);
    paste(plot, label, kPad, (box.y0 + box.y1 - label.height) / 2);
  }
  if (!options.title.empty()) {
    draw_text(plot, (box.x0 + box.x1 - text_width(options.title, kTextScale)) / 2, kPad,
              options.title, 0, kTextScale);
  }

  // Legend: a line sample and the name per named series, top-aligned with the axes.
  if (has_legend) {
    const int x0 = box.x1 + kPad;
    int y = box.y0 + 4;
    for (size_t i = 0; i < series.size(); ++i) {
      if (series[i].name.empty()) continue;
      fill_rect(plot, x0, y + cap_h / 2 - 2, kSwatchWidth, 4, series_colour(i));
      draw_text(plot, x0 + kSwatchWidth + 8, y, series[i].name, 0, kTextScale);
      y += text_h + 8;
    }
  }
  return plot;
}

}  // namespace numeral
