#pragma once
// torchvision's ImageFolder layout as a labelled image set: DIR/<class>/<image>, one subfolder per
// class (classes in name order; a class's index is its position), PNG, JPEG or BMP files read with
// stb_image. Each image's shorter side is resized to image_size with an antialiased bilinear
// filter (LibTorch's, as torchvision's Resize) and the centre image_size x image_size kept, as grey
// (ITU-R BT.601 luma) or RGB.
//
// What is skipped and what is refused, and why:
//  - a file that is not an image by its extension (a README, .DS_Store): skipped with a warning;
//    such clutter is common and holds no pixels;
//  - a hidden file or folder (name starting with "."): skipped with a warning, as torchvision does;
//  - an image file that stb_image cannot decode (corrupt or truncated): refused, naming the file;
//    silently training on fewer images than the folder shows would go unnoticed;
//  - an empty class folder, or a folder with no class folders: refused; a class without images
//    cannot be learnt and would shift every later class's index.
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "numeral/data/dataset.h"

namespace numeral {

struct ImageFolderOptions {
  int64_t image_size = 0;  // the square side; 0 = the first image's shorter side
  int64_t channels = 0;    // 1 (grey) or 3 (RGB); 0 = 3 if any image has colour, else 1
};

struct ImageFolderData {
  Dataset data;                          // images [N, C, S, S] uint8, labels [N] int64
  std::vector<std::string> class_names;  // the folder names, in index order
  std::vector<std::string> warnings;     // one line per skipped file
};

// Whether `dir` has class subfolders holding at least one image file (and no IDX files).
bool looks_like_image_folder(const std::filesystem::path& dir);

// Reads every class folder of `dir`. Throws numeral::Error for a corrupt image, an empty class
// folder, no class folders, or bad options.
ImageFolderData read_image_folder(const std::filesystem::path& dir,
                                  const ImageFolderOptions& options = {});

// Decodes an image file's bytes (PNG, JPEG, BMP) to [C, H, W] uint8, C = 1 or 3 (grey with alpha
// drops the alpha; RGBA keeps RGB). Throws numeral::Error naming `origin` when it cannot.
torch::Tensor decode_image(const std::string& bytes, const std::string& origin);

// Resizes the shorter side of images [C, H, W] uint8 to `size` (antialiased bilinear) and keeps
// the centre size x size; converts to `channels` (1: luma, 3: grey replicated). -> [channels, S,
// S].
torch::Tensor fit_image(const torch::Tensor& image, int64_t size, int64_t channels);

// fit_image on a batch [N, C, H, W] uint8 of one size (in chunks, so the float copy stays small).
torch::Tensor fit_images(const torch::Tensor& images, int64_t size, int64_t channels);

}  // namespace numeral
