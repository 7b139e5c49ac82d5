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

#include "numeral/common/fs.h"
#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/inference/generate.h"
#include "numeral/model/unet.h"

namespace numeral {

// Writes one unsigned-byte IDX file piece by piece through a PendingFile: the header (with the
// final dimensions, known up front) at construction, then each append()'s bytes (gzip-compressed
// when the name ends in ".gz"). finish() checks that exactly dims[0] items came and syncs the file;
// publish() renames it into place. Without a publish (an error, an interrupt) the temporary file
// goes and `path` is untouched.
class IdxStreamWriter {
 public:
  IdxStreamWriter(std::filesystem::path path, std::vector<int64_t> dims);
  ~IdxStreamWriter();
  IdxStreamWriter(const IdxStreamWriter&) = delete;
  IdxStreamWriter& operator=(const IdxStreamWriter&) = delete;

  // Appends items: a uint8 tensor shaped [n, dims[1], ...]; throws past dims[0] items.
  void append(const torch::Tensor& data);
  // Ends the stream and syncs the temporary file.
  void finish();
  // Renames the finished file into place.
  void publish();
  // finish() then publish().
  void commit();
  int64_t written() const { return written_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void close_stream() noexcept;
  std::filesystem::path path_;
  std::unique_ptr<PendingFile> file_;
  std::vector<int64_t> dims_;
  int64_t item_bytes_ = 1, written_ = 0;
  void* stream_ = nullptr;  // gzFile
  bool finished_ = false;
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

// A pair of IDX files (images and, for a labelled export, labels) written as batches of generated
// images arrive, and committed together: both are renamed into place under an exclusive lock on
// their directory, which load_data takes shared, so a reader never sees half a pair. Any file at
// the prefix that the loader would pair with them (plain or .gz, idx3 or idx4, the labels of an
// earlier labelled export) makes the export refuse to start unless `overwrite`; with it, the
// earlier export is replaced whole.
class IdxExport {
 public:
  // `count` images of image_shape {C, H, W}; `labelled` = false writes no labels file. Grey only
  // (C = 1): a colour export is refused, pointing at PNG folders.
  IdxExport(const std::string& prefix, int64_t count, bool labelled,
            const std::vector<int64_t>& image_shape, bool overwrite);
  // Appends images [n, C, H, W] (float in [-1, 1] or uint8 pixels) and their labels [n] int64
  // (ignored when unlabelled).
  void append(const torch::Tensor& images, const torch::Tensor& labels);
  // Finishes both files and puts them in place together; throws unless every image was appended.
  void commit();
  const IdxExportPaths& paths() const { return paths_; }
  bool has_labels() const { return labels_ != nullptr; }

 private:
  // The files at the prefix that the loader would read with this export's (any name of the
  // images or labels, plain or .gz, idx3 or idx4) that exist; `own`: with the names it writes.
  std::vector<std::filesystem::path> existing_files(bool own) const;
  IdxExportPaths paths_;
  std::filesystem::path dir_;
  std::string stem_;  // the prefix's file name without ".gz"
  bool labelled_ = false;
  bool overwrite_;
  std::unique_ptr<IdxStreamWriter> images_, labels_;
};

}  // namespace numeral
