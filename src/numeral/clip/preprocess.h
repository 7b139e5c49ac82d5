#pragma once
// CLIP's image preprocessing (HF CLIPImageProcessor, OpenAI's clip.load transform): the image as
// 8-bit pixels, its shortest side resized to `size` with a bicubic filter, a centre crop of
// `crop_size`, three channels, scaled to [0, 1] and normalised with CLIP's mean and std.
#include <torch/torch.h>

#include <array>
#include <filesystem>

namespace numeral::clip {

struct PreprocessConfig {
  int64_t size = 224;       // the shortest side after resizing
  int64_t crop_size = 224;  // the square centre crop (the vision tower's image_size)
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};  // OpenAI's, per RGB
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};

  // Throws numeral::Error for a non-positive size or std.
  void validate() const;
};

// A Hugging Face preprocessor_config.json ("size": n or {"shortest_edge": n}, "crop_size": n or
// {"height", "width"}, "image_mean", "image_std"); `fallback` when the file does not exist.
PreprocessConfig read_preprocess_config(const std::filesystem::path& json,
                                        const PreprocessConfig& fallback);

// Images [N, C, H, W] float in numeral's range [-1, 1], C = 1 (grey, replicated to RGB) or 3 ->
// pixel values [N, 3, crop, crop] float. Steps: to uint8 as a saved PNG holds them (round);
// resize the shortest side to `size` with the antialiased bicubic filter (a = -0.5, PIL's, which
// HF uses) in PIL's two passes (width, then height), each rounded back to 8 bits; centre crop (top
// = (h - crop) / 2, rounded down); x / 255; (x - mean) / std.
torch::Tensor preprocess(const torch::Tensor& images, const PreprocessConfig& config);

}  // namespace numeral::clip
