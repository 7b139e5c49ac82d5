#include "numeral/generate/preview.h"

#include <fmt/format.h>

#include "numeral/generate/generate.h"

namespace numeral {

PreviewWriter::PreviewWriter(std::filesystem::path run_dir, int64_t num_classes,
                             int64_t per_class)
    : run_dir_(std::move(run_dir)), num_classes_(num_classes), per_class_(per_class) {}

void PreviewWriter::write(UNet model, std::shared_ptr<GaussianDiffusion> diffusion,
                          int64_t epoch) {
  std::vector<int64_t> classes(num_classes_);
  for (int64_t c = 0; c < num_classes_; ++c) classes[c] = c;
  GenerateOptions options;
  options.sampler.name = "ddim";  // previews should be cheap: 25 deterministic steps
  options.seed = 1234;
  const auto images = generate(model, diffusion, repeat_labels(classes, per_class_), options);
  Image grid = make_grid(images, static_cast<int>(per_class_), /*padding=*/2, /*scale=*/2);
  grid = add_title(grid, fmt::format("epoch {}", epoch));
  write_png(run_dir_ / "previews" / fmt::format("epoch-{:03}.png", epoch), grid);
  frames_.push_back(grid);
  captions_.push_back(fmt::format("epoch {}", epoch));
  write_gif(run_dir_ / "previews.gif", frames_, /*delay_centiseconds=*/60);
  // All epochs side by side (at most the last 8, so the picture stays readable).
  const size_t first = frames_.size() > 8 ? frames_.size() - 8 : 0;
  std::vector<Image> tiles(frames_.begin() + static_cast<long>(first), frames_.end());
  std::vector<std::string> captions(captions_.begin() + static_cast<long>(first), captions_.end());
  write_png(run_dir_ / "previews.png", label_columns(tiles, captions));
}

}  // namespace numeral
