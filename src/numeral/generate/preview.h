#pragma once
// Image quality over training: a fixed-seed sample grid every few epochs, assembled into one
// picture and a GIF.
#include <filesystem>
#include <vector>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/io/image.h"
#include "numeral/model/unet.h"

namespace numeral {

// Writes <run>/previews/epoch-NNN.png (a row per class, labelled with its name, the same seeds
// every time; the first kMaxRows classes of a larger set), and after each one rewrites
// <run>/previews.png (all epochs so far, labelled) and <run>/previews.gif.
class PreviewWriter {
 public:
  static constexpr size_t kMaxRows = 20;
  PreviewWriter(std::filesystem::path run_dir, std::vector<std::string> class_names,
                int64_t per_class = 8);
  void write(UNet model, std::shared_ptr<GaussianDiffusion> diffusion, int64_t epoch);

 private:
  std::filesystem::path run_dir_;
  std::vector<std::string> class_names_;
  int64_t per_class_;
  std::vector<Image> frames_;  // every epoch's titled grid so far
};

}  // namespace numeral
