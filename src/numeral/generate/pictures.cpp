#include "numeral/generate/pictures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/generate/export.h"
#include "numeral/io/plot.h"

namespace numeral {
namespace {

constexpr int kBlockGap = 12;      // white pixels between the blocks of a picture
constexpr int kCaptionMargin = 4;  // above and below a caption band's text

bool any_non_empty(const std::vector<std::string>& labels) {
  return std::any_of(labels.begin(), labels.end(), [](const std::string& s) { return !s.empty(); });
}

void check_images(const torch::Tensor& images, const char* function) {
  NUMERAL_CHECK(images.defined() && images.dim() == 4 && images.size(0) > 0,
                "{}: expected images [N, C, H, W], got {} dimensions", function,
                images.defined() ? images.dim() : 0);
}

// The height of make_grid's output for `rows` rows of tiles `tile_h` pixels tall (unscaled).
int grid_height(int64_t rows, int64_t tile_h, int scale) {
  return static_cast<int>(rows * (tile_h * scale + kTilePadding) + kTilePadding);
}

}  // namespace

Image labelled_grid(const torch::Tensor& images, int64_t columns, const GridLabels& labels,
                    int scale) {
  check_images(images, "labelled_grid");
  NUMERAL_CHECK(columns >= 1, "labelled_grid: expected columns >= 1, got {}", columns);
  const int64_t n = images.size(0);
  const int cols = static_cast<int>(std::min(columns, n));
  Image grid = make_grid(images, cols, kTilePadding, scale);
  const int tile_w = static_cast<int>(images.size(3)) * scale;
  const int cell_w = tile_w + kTilePadding;
  const int cell_h = static_cast<int>(images.size(2)) * scale + kTilePadding;
  int top = 0;  // the grid's y within the picture being built
  if (any_non_empty(labels.columns)) {
    NUMERAL_CHECK(static_cast<int>(labels.columns.size()) == cols,
                  "labelled_grid: {} column captions for {} columns", labels.columns.size(), cols);
    int text_scale = kTextScale, text_h = 0;
    for (const auto& caption : labels.columns) {
      if (text_width(caption, kTextScale) > cell_w - 2) text_scale = 1;  // small tiles
    }
    for (const auto& caption : labels.columns) {
      text_h = std::max(text_h, text_height(caption, text_scale));
    }
    const int band = text_h + 2 * kCaptionMargin;
    Image out(grid.width, band + grid.height, grid.channels, kBackground);
    paste(out, grid, 0, band);
    for (int i = 0; i < cols; ++i) {
      const int centre = kTilePadding + i * cell_w + tile_w / 2;
      draw_text(out, centre - text_width(labels.columns[i], text_scale) / 2, kCaptionMargin,
                labels.columns[i], 0, text_scale);
    }
    grid = std::move(out);
    top = band;
  }
  if (any_non_empty(labels.rows)) {
    grid = label_rows(grid, labels.rows, cell_h, top + kTilePadding / 2, kTextScale);
  }
  if (!labels.title.empty()) grid = add_title(grid, labels.title, kTextScale);
  return grid;
}

Image hstack(const std::vector<Image>& images, int gap) {
  NUMERAL_CHECK(!images.empty(), "hstack: no images");
  int width = gap * static_cast<int>(images.size() - 1), height = 0, channels = 1;
  for (const auto& image : images) {
    width += image.width;
    height = std::max(height, image.height);
    channels = std::max(channels, image.channels);
  }
  Image out(width, height, channels, kBackground);
  int x = 0;
  for (const auto& image : images) {
    paste(out, image, x, 0);
    x += image.width + gap;
  }
  return out;
}

Image vstack(const std::vector<Image>& images, int gap) {
  NUMERAL_CHECK(!images.empty(), "vstack: no images");
  int width = 0, height = gap * static_cast<int>(images.size() - 1), channels = 1;
  for (const auto& image : images) {
    width = std::max(width, image.width);
    height += image.height;
    channels = std::max(channels, image.channels);
  }
  Image out(width, height, channels, kBackground);
  int y = 0;
  for (const auto& image : images) {
    paste(out, image, (width - image.width) / 2, y);
    y += image.height + gap;
  }
  return out;
}

Image pad_to(const Image& image, int width, int height) {
  Image out(std::max(width, image.width), std::max(height, image.height), image.channels,
            kBackground);
  paste(out, image, (out.width - image.width) / 2, (out.height - image.height) / 2);
  return out;
}

int64_t noise_timestep(int64_t T, double fraction) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(T - 1)));
}

NoiseProgression noise_progression(const NoiseSchedule& schedule, const torch::Tensor& x0,
                                   const std::vector<double>& fractions, uint64_t seed) {
  check_images(x0, "noise_progression");
  NUMERAL_CHECK(!fractions.empty(), "--fractions: expected at least one fraction");
  NoiseProgression p;
  p.fractions = fractions;
  const auto abar = schedule.alphas_cumprod.to(torch::kCPU, torch::kDouble);
  const auto clean = x0.to(torch::kCPU, torch::kFloat);
  auto generator = make_generator(seed);
  // DDPM eq. 4 with one eps per image, shared by its frames.
  const auto eps = randn_on(clean.sizes(), generator, torch::kCPU);
  std::vector<torch::Tensor> frames;
  for (double f : fractions) {
    NUMERAL_CHECK(std::isfinite(f) && f >= 0 && f <= 1,
                  "--fractions: {} is not a fraction of T in [0, 1]", f);
    if (f == 0) {
      p.t.push_back(-1);
      p.abar.push_back(1.0);
      frames.push_back(clean);
      continue;
    }
    const int64_t t = noise_timestep(schedule.T, f);
    const double a = abar[t].item<double>();
    p.t.push_back(t);
    p.abar.push_back(a);
    frames.push_back(std::sqrt(a) * clean + std::sqrt(1 - a) * eps);
  }
  p.frames = torch::stack(frames);
  return p;
}

Image noise_strip(const NoiseProgression& progression, const std::vector<std::string>& row_labels,
                  int scale, const std::string& title) {
  constexpr int kStripPadding = 4;          // label_columns' padding
  const auto& frames = progression.frames;  // [F, N, C, H, W]
  std::vector<Image> tiles;
  std::vector<std::string> captions;
  for (size_t i = 0; i < progression.fractions.size(); ++i) {
    tiles.push_back(make_grid(frames[static_cast<int64_t>(i)], 1, kTilePadding, scale));
    const std::string t = progression.t[i] < 0 ? "clean" : fmt::format("t={}", progression.t[i]);
    captions.push_back(fmt::format("{:g}%\n{}", progression.fractions[i] * 100, t));
  }
  Image strip = label_columns(tiles, captions, kTextScale, kStripPadding);
  if (any_non_empty(row_labels)) {
    const int cell_h = static_cast<int>(frames.size(3)) * scale + kTilePadding;
    strip = label_rows(strip, row_labels, cell_h, kStripPadding + kTilePadding / 2, kTextScale);
  }
  return title.empty() ? strip : add_title(strip, title, kTextScale);
}

Trajectory record_trajectory(const Pipeline& pipeline, const GenerateRequest& request) {
  const GenerateRequest r = pipeline.resolve(request);
  const int64_t count = r.count(pipeline.num_classes());
  NUMERAL_CHECK(count <= pipeline.execution().batch_size,
                "trajectory: {} images do not fit one batch of batch_size {}", count,
                pipeline.execution().batch_size);
  Trajectory trajectory;
  std::vector<torch::Tensor> x_t, x0;
  GenerateObserver observer;
  observer.on_step = [&](const StepEvent& e) {
    trajectory.t.push_back(e.step.t);
    x_t.push_back(from_model_range(e.step.x_t.to(torch::kCPU)));
    x0.push_back(from_model_range(e.step.x0.to(torch::kCPU)));
  };
  const auto result = from_model_range(pipeline.generate(r, observer).images);
  x_t.push_back(result);
  x0.push_back(result);
  trajectory.x_t = torch::stack(x_t);
  trajectory.x0 = torch::stack(x0);
  return trajectory;
}

std::vector<int64_t> trajectory_frames(int64_t steps, int64_t frames) {
  NUMERAL_CHECK(frames >= 2, "--frames {}: expected at least 2 (pure noise and the result)",
                frames);
  NUMERAL_CHECK(steps >= 1, "trajectory_frames: expected at least one step, got {}", steps);
  frames = std::min(frames, steps + 1);
  std::vector<int64_t> positions;
  for (int64_t k = 0; k < frames; ++k) {
    const auto p = static_cast<int64_t>(
        std::llround(static_cast<double>(k * steps) / static_cast<double>(frames - 1)));
    if (positions.empty() || positions.back() != p) positions.push_back(p);
  }
  return positions;
}

namespace {

std::string frame_caption(const Trajectory& trajectory, int64_t position) {
  return position < trajectory.steps() ? fmt::format("t={}", trajectory.t[position]) : "final";
}

// Images [B * F, C, H, W], row b = image b at each of the positions.
torch::Tensor frames_by_row(const torch::Tensor& steps, const std::vector<int64_t>& positions) {
  const auto picked = steps.index_select(0, torch::tensor(positions, torch::kLong));  // [F, B, ...]
  const auto rows = picked.transpose(0, 1).contiguous();                              // [B, F, ...]
  return rows.view({-1, rows.size(2), rows.size(3), rows.size(4)});
}

}  // namespace

Image trajectory_grid(const Trajectory& trajectory, const std::vector<int64_t>& frames,
                      const std::vector<std::string>& row_labels, int scale,
                      const std::string& title) {
  NUMERAL_CHECK(!frames.empty(), "trajectory_grid: no frames");
  std::vector<std::string> captions;
  for (int64_t p : frames) {
    NUMERAL_CHECK(p >= 0 && p <= trajectory.steps(), "trajectory_grid: frame {} of {} steps", p,
                  trajectory.steps());
    captions.push_back(frame_caption(trajectory, p));
  }
  const auto columns = static_cast<int64_t>(frames.size());
  const Image noisy = labelled_grid(frames_by_row(trajectory.x_t, frames), columns,
                                    {row_labels, captions, "x_t: the sample at each step"}, scale);
  const Image estimate =
      labelled_grid(frames_by_row(trajectory.x0, frames), columns,
                    {row_labels, captions, "x_0: the model's estimate of the result"}, scale);
  const Image both = vstack({noisy, estimate}, 2 * kBlockGap);
  return title.empty() ? both : add_title(both, title, kTextScale);
}

std::vector<Image> trajectory_animation(const Trajectory& trajectory,
                                        const std::vector<std::string>& column_labels, int scale) {
  const int64_t b = trajectory.x_t.size(1);
  std::vector<Image> frames;
  int width = 0, height = 0;
  for (int64_t p = 0; p <= trajectory.steps(); ++p) {
    const auto images = torch::cat({trajectory.x_t[p], trajectory.x0[p]});  // [2B, C, H, W]
    const std::string title =
        p < trajectory.steps()
            ? fmt::format("step {}/{}  t={}", p + 1, trajectory.steps(), trajectory.t[p])
            : fmt::format("result after {} steps", trajectory.steps());
    frames.push_back(labelled_grid(images, b, {{"x_t", "x_0"}, column_labels, title}, scale));
    width = std::max(width, frames.back().width);
    height = std::max(height, frames.back().height);
  }
  for (auto& frame : frames) frame = pad_to(frame, width, height);
  return frames;
}

Image sweep_grid(const std::vector<torch::Tensor>& images,
                 const std::vector<std::string>& block_titles, int64_t per_class,
                 const std::vector<std::string>& row_labels, int scale, const std::string& title) {
  NUMERAL_CHECK(!images.empty() && images.size() == block_titles.size(),
                "sweep_grid: {} image sets for {} titles", images.size(), block_titles.size());
  std::vector<Image> blocks;
  for (size_t i = 0; i < images.size(); ++i) {
    check_images(images[i], "sweep_grid");
    NUMERAL_CHECK(images[i].sizes() == images[0].sizes(),
                  "sweep_grid: every block needs the same images");
    blocks.push_back(labelled_grid(images[i], per_class, {{}, {}, block_titles[i]}, scale));
  }
  Image picture = hstack(blocks, kBlockGap);
  if (any_non_empty(row_labels)) {
    const int64_t rows = (images[0].size(0) + per_class - 1) / per_class;
    const int64_t tile_h = images[0].size(2);
    const int band = blocks[0].height - grid_height(rows, tile_h, scale);  // the block titles
    picture = label_rows(picture, row_labels, static_cast<int>(tile_h) * scale + kTilePadding,
                         band + kTilePadding / 2, kTextScale);
  }
  return title.empty() ? picture : add_title(picture, title, kTextScale);
}

std::vector<EpochStats> read_training_log(const std::filesystem::path& path) {
  NUMERAL_CHECK(std::filesystem::exists(path),
                "{}: no training log (expected the log.jsonl that `numeral train` writes in its "
                "run directory)",
                path.string());
  std::istringstream in(read_file(path));
  std::vector<EpochStats> history;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      history.push_back(nlohmann::json::parse(line).get<EpochStats>());
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: corrupt training log line: {}", path.string(), number, e.what());
    }
  }
  NUMERAL_CHECK(!history.empty(), "{}: empty training log (has the run finished an epoch?)",
                path.string());
  return history;
}

Image loss_plot(const std::vector<EpochStats>& history, const std::string& title, bool log_y) {
  NUMERAL_CHECK(!history.empty(), "loss_plot: no epochs to plot");
  Series train{"train", {}, {}}, val{"validation (EMA)", {}, {}};
  for (const auto& h : history) {
    train.x.push_back(static_cast<double>(h.epoch));
    train.y.push_back(h.train_loss);
    val.x.push_back(static_cast<double>(h.epoch));
    val.y.push_back(h.val_loss);
  }
  PlotOptions options;
  options.title = title;
  options.x_label = "epoch";
  options.y_label = log_y ? "loss (MSE, log scale)" : "loss (MSE)";
  options.log_y = log_y;
  return plot_lines({train, val}, options);
}

}  // namespace numeral
