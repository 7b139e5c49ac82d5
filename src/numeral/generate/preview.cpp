#include "numeral/generate/preview.h"

#include <fmt/format.h>

#include <algorithm>

#include "numeral/generate/pictures.h"
#include "numeral/inference/generate.h"

namespace numeral {

PreviewWriter::PreviewWriter(std::filesystem::path run_dir, std::vector<std::string> class_names,
                             int64_t per_class)
    : run_dir_(std::move(run_dir)), class_names_(std::move(class_names)), per_class_(per_class) {
  if (class_names_.size() > kMaxRows) class_names_.resize(kMaxRows);
  // A resumed run keeps the grids of its earlier epochs.
  std::vector<std::filesystem::path> earlier;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir_ / "previews", ec)) {
    if (entry.path().extension() == ".png") earlier.push_back(entry.path());
  }
  std::sort(earlier.begin(), earlier.end());
  for (const auto& path : earlier) frames_.push_back(read_png(path));
}

void PreviewWriter::write(UNet model, std::shared_ptr<GaussianDiffusion> diffusion, int64_t epoch) {
  const int64_t rows = static_cast<int64_t>(class_names_.size());
  std::vector<int64_t> classes(rows);
  for (int64_t c = 0; c < rows; ++c) classes[c] = c;
  GenerateOptions options;
  options.sampler.name = SamplerName::ddim;  // previews should be cheap: 25 deterministic steps,
  options.guidance = 0;                      // one network call each: the raw conditional model
  options.seed = 1234;
  const auto images = generate(model, diffusion, repeat_labels(classes, per_class_), options);
  GridLabels labels;
  labels.rows = class_names_;
  const Image grid = labelled_grid(images, per_class_, labels, /*scale=*/2);
  const Image titled = add_title(grid, fmt::format("epoch {}", epoch));
  write_png(run_dir_ / "previews" / fmt::format("epoch-{:03}.png", epoch), titled);
  frames_.push_back(titled);
  // Frames from an earlier session may differ in size (e.g. another version drew them): a GIF
  // needs one size, so centre them all on the largest canvas.
  int width = 0, height = 0;
  for (const auto& f : frames_)
    width = std::max(width, f.width), height = std::max(height, f.height);
  for (auto& f : frames_) f = pad_to(f, width, height);
  write_gif(run_dir_ / "previews.gif", frames_, /*delay_centiseconds=*/60);
  // Up to 8 evenly spaced epochs side by side, always the first and the latest, so one picture
  // shows blobs turning into digits.
  const size_t n = frames_.size(), shown = std::min<size_t>(n, 8);
  std::vector<Image> picked;
  for (size_t i = 0; i < shown; ++i) {
    picked.push_back(frames_[shown == 1 ? 0 : i * (n - 1) / (shown - 1)]);
  }
  write_png(run_dir_ / "previews.png", hstack(picked, /*gap=*/12));
}

}  // namespace numeral
