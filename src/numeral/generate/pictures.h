#pragma once
// The pictures of the generation commands: labelled sample grids, the forward noise strip,
// reverse-process trajectories, guidance sweeps and loss curves. All follow io/image.h: digits
// white on black in their tiles, white margins, black text, nearest-neighbour upscaling.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/schedule.h"
#include "numeral/inference/generate.h"
#include "numeral/inference/pipeline.h"
#include "numeral/io/image.h"
#include "numeral/model/unet.h"

namespace numeral {

// Pixels between tiles in every grid here.
inline constexpr int kTilePadding = 2;
// Font scale of row labels, captions and titles.
inline constexpr int kTextScale = 2;

// What labelled_grid writes around the tiles.
struct GridLabels {
  std::vector<std::string> rows;     // one per row, at the left; empty = no label column
  std::vector<std::string> columns;  // one per column, above it; empty = no caption band
  std::string title;                 // above everything; empty = none
};

// Tiles images [N, C, H, W] (uint8, or float in [-1, 1]) row-major, `columns` per row, upscaled
// by `scale`, with the labels of `labels`.
Image labelled_grid(const torch::Tensor& images, int64_t columns, const GridLabels& labels,
                    int scale);

// Pictures side by side (tops aligned) or one above the other (centred), `gap` white pixels
// apart; RGB if any is.
Image hstack(const std::vector<Image>& images, int gap);
Image vstack(const std::vector<Image>& images, int gap);

// Centres `image` on a white canvas of width x height (at least its own size).
Image pad_to(const Image& image, int width, int height);

// The forward-process timestep shown for the fraction f of the process: round(f * (T - 1)).
int64_t noise_timestep(int64_t T, double fraction);

// Forward noising of real images at fractions of T, one fixed noise draw per image so the frames
// of a row show one progression. Fraction 0 is the clean image itself.
struct NoiseProgression {
  std::vector<double> fractions;
  std::vector<int64_t> t;    // noise_timestep(T, f); -1 for the clean frame
  std::vector<double> abar;  // abar_t of each frame; 1 for the clean frame
  torch::Tensor frames;      // [F, N, C, H, W] float
};

// DDPM eq. 4 at each fraction: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, eps from `seed`.
// Throws numeral::Error for fractions outside [0, 1].
NoiseProgression noise_progression(const NoiseSchedule& schedule, const torch::Tensor& x0,
                                   const std::vector<double>& fractions,
                                   uint64_t seed);  // x0: [N, C, H, W] in [-1, 1]

// One row per image, one column per fraction, the percentage and t under each column (via
// label_columns), row labels at the left and a title on top.
Image noise_strip(const NoiseProgression& progression, const std::vector<std::string>& row_labels,
                  int scale, const std::string& title);

// Every step of one sampler run, as pixels.
struct Trajectory {
  std::vector<int64_t> t;  // [S] the timestep each step evaluated the model at
  torch::Tensor x_t;       // [S + 1, B, C, H, W] uint8: x_t before each step, then the result
  torch::Tensor x0;  // [S + 1, B, C, H, W] uint8: the x_0 estimate at each step, then the result
  int64_t steps() const { return static_cast<int64_t>(t.size()); }
};

// Runs `request` (one batch: at most the pipeline's batch_size images, so the result is what
// `numeral sample` makes with the same seed), recording x_t and the x_0 estimate at every step
// through the pipeline's observer.
Trajectory record_trajectory(const Pipeline& pipeline, const GenerateRequest& request);

// `frames` positions evenly spaced from 0 (pure noise, before the first step) to `steps` (the
// result), rounded and deduplicated; at least 2 frames.
std::vector<int64_t> trajectory_frames(int64_t steps, int64_t frames);

// Two blocks, "x_t" rows (the sample at each step) above "x_0 estimate" rows, one row per image
// (labelled with row_labels), one column per frame captioned "t=99" .. "t=0", "final".
Image trajectory_grid(const Trajectory& trajectory, const std::vector<int64_t>& frames,
                      const std::vector<std::string>& row_labels, int scale,
                      const std::string& title);

// One GIF frame per step and one for the result: x_t above, the x_0 estimate below, one column
// per image captioned with column_labels, the step and t in the title. Frames share one size.
std::vector<Image> trajectory_animation(const Trajectory& trajectory,
                                        const std::vector<std::string>& column_labels, int scale);

// A guidance sweep: one block per weight (rows = classes with row_labels at the far left,
// columns = the samples of that class), side by side, each titled block_titles[i] ("w=2").
// images[i]: [K * per_class, C, H, W], class-major, the same seeds in every block.
Image sweep_grid(const std::vector<torch::Tensor>& images,
                 const std::vector<std::string>& block_titles, int64_t per_class,
                 const std::vector<std::string>& row_labels, int scale, const std::string& title);

// Reads a run's log.jsonl (one EpochStats object per line; blank lines skipped). Throws
// numeral::Error naming the file (and line) when it is missing, empty or corrupt.
std::vector<EpochStats> read_training_log(const std::filesystem::path& path);

// Training and validation loss against epoch, on a log y axis unless log_y is false.
Image loss_plot(const std::vector<EpochStats>& history, const std::string& title,
                bool log_y = true);

}  // namespace numeral
