#pragma once
// Generating many digits without holding them all: batch-by-batch generation with generate()'s
// seeding, and IDX files (MNIST's format) written as the batches arrive, then renamed into place.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/generate/generate.h"
#include "numeral/model/unet.h"

namespace numeral {

// Writes one unsigned-byte IDX file piece by piece: the header (with the final dimensions, known
// up front) at construction, then each append()'s bytes, into a temporary file beside `path`
// (gzip-compressed when the name ends in ".gz"). commit() checks that exactly dims[0] items came
// and renames the file over `path`; without a commit (an error, an interrupt) the destructor
// deletes the temporary file and `path` is untouched.
class IdxStreamWriter {
 public:
  IdxStreamWriter(std::filesystem::path path, std::vector<int64_t> dims);
  ~IdxStreamWriter();
  IdxStreamWriter(const IdxStreamWriter&) = delete;
  IdxStreamWriter& operator=(const IdxStreamWriter&) = delete;

  // Appends items: a uint8 tensor shaped [n, dims[1], ...]; throws past dims[0] items.
  void append(const torch::Tensor& data);
  // Finishes the file and renames it into place.
  void commit();
  int64_t written() const { return written_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void discard() noexcept;
  std::filesystem::path path_, tmp_;
  std::vector<int64_t> dims_;
  int64_t item_bytes_ = 1, written_ = 0;
  void* file_ = nullptr;  // gzFile
  bool committed_ = false;
};

// Converts images in the model's range to IDX pixel order: [N, H, W] for grey, [N, H, W, C] for
// RGB (what data/ reads back), uint8 with rounding and clamping.
torch::Tensor idx_pixels(const torch::Tensor& images);  // [N, C, H, W] -> uint8

// The files an IDX export with `prefix` writes: PREFIX-images-idx3-ubyte (idx4 for RGB) and
// PREFIX-labels-idx1-ubyte; when PREFIX ends in ".gz", that suffix moves to the end of both names
// and the files are gzip-compressed. So "out/train" makes a directory `numeral train --data out`
// reads. Throws numeral::Error for an empty prefix or one naming a directory.
struct IdxExportPaths {
  std::filesystem::path images, labels;
};
IdxExportPaths idx_export_paths(const std::string& prefix, int64_t image_channels);

// A pair of IDX files (images and, unless every label is kNullLabel, labels) written as batches of
// generated images arrive. The labels are known up front; both files appear together on commit().
class IdxExport {
 public:
  // labels: [N] int64, the label of every image that will be appended; image_shape: {C, H, W}.
  IdxExport(const std::string& prefix, const torch::Tensor& labels,
            const std::vector<int64_t>& image_shape);
  // Appends images [n, C, H, W] (float in [-1, 1] or uint8 pixels), in label order.
  void append(const torch::Tensor& images);
  // Finishes both files; throws unless every labelled image was appended.
  void commit();
  const IdxExportPaths& paths() const { return paths_; }
  bool has_labels() const { return labels_ != nullptr; }

 private:
  IdxExportPaths paths_;
  std::unique_ptr<IdxStreamWriter> images_, labels_;
};

}  // namespace numeral
