#include "numeral/generate/export.h"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/lock.h"
#include "numeral/data/dataset.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/inference/trained_model.h"

namespace numeral {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

gzFile as_gz(void* file) {
  return static_cast<gzFile>(file);
}

}  // namespace

IdxStreamWriter::IdxStreamWriter(std::filesystem::path path, std::vector<int64_t> dims)
    : path_(std::move(path)), dims_(std::move(dims)) {
  NUMERAL_CHECK(!path_.empty(), "IDX export: empty output path");
  NUMERAL_CHECK(dims_.size() >= 1 && dims_.size() <= 4,
                "IDX export {}: expected 1 to 4 dimensions, got {}", path_.string(), dims_.size());
  std::string header;
  put_be32(header, 0x00000800u | static_cast<uint32_t>(dims_.size()));
  for (size_t i = 0; i < dims_.size(); ++i) {
    NUMERAL_CHECK(dims_[i] > 0 && dims_[i] <= INT32_MAX,
                  "IDX export {}: dimension {} is {}, expected 1 to {}", path_.string(), i,
                  dims_[i], INT32_MAX);
    put_be32(header, static_cast<uint32_t>(dims_[i]));
    if (i > 0) item_bytes_ *= dims_[i];
  }
  file_ = std::make_unique<PendingFile>(path_);
  const bool gz = ends_with(path_.filename().string(), ".gz");
  // zlib writes through its own copy of the descriptor, so the PendingFile keeps the lock on its
  // own; "T" is transparent (plain) writing through the same calls.
  const int fd = ::dup(file_->fd());
  NUMERAL_CHECK(fd >= 0, "cannot write {}: {}", path_.string(), std::strerror(errno));
  gzFile stream = gzdopen(fd, gz ? "wb6" : "wbT");
  if (stream == nullptr) {
    ::close(fd);
    fail("cannot write {}: cannot start a zlib stream", path_.string());
  }
  stream_ = stream;
  gzbuffer(stream, 1 << 20);
  if (gzwrite(stream, header.data(), static_cast<unsigned>(header.size())) !=
      static_cast<int>(header.size())) {
    close_stream();
    fail("cannot write {}: write failed", path_.string());
  }
}

IdxStreamWriter::~IdxStreamWriter() {
  close_stream();
}

void IdxStreamWriter::close_stream() noexcept {
  if (stream_ != nullptr) gzclose(as_gz(stream_));
  stream_ = nullptr;
}

void IdxStreamWriter::append(const torch::Tensor& data) {
  NUMERAL_CHECK(stream_ != nullptr && !finished_, "IDX export {}: append after finish",
                path_.string());
  NUMERAL_CHECK(
      data.scalar_type() == torch::kUInt8 && data.dim() == static_cast<int64_t>(dims_.size()),
      "IDX export {}: expected a uint8 tensor of {} dimensions", path_.string(), dims_.size());
  for (size_t i = 1; i < dims_.size(); ++i) {
    NUMERAL_CHECK(data.size(static_cast<int64_t>(i)) == dims_[i],
                  "IDX export {}: item dimension {} is {}, expected {}", path_.string(), i,
                  data.size(static_cast<int64_t>(i)), dims_[i]);
  }
  const int64_t n = data.size(0);
  NUMERAL_CHECK(written_ + n <= dims_[0], "IDX export {}: {} items appended, the header says {}",
                path_.string(), written_ + n, dims_[0]);
  const torch::Tensor bytes = data.to(torch::kCPU).contiguous();
  const auto* p = reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>());
  int64_t left = n * item_bytes_;
  while (left > 0) {
    const auto chunk = static_cast<unsigned>(std::min<int64_t>(left, 1 << 30));
    if (gzwrite(as_gz(stream_), p, chunk) != static_cast<int>(chunk)) {
      int code = Z_OK;
      const char* message = gzerror(as_gz(stream_), &code);
      fail("cannot write {}: {}", path_.string(), code == Z_ERRNO ? std::strerror(errno) : message);
    }
    p += chunk;
    left -= chunk;
  }
  written_ += n;
}

void IdxStreamWriter::finish() {
  NUMERAL_CHECK(stream_ != nullptr && !finished_, "IDX export {}: finished twice", path_.string());
  NUMERAL_CHECK(written_ == dims_[0], "IDX export {}: {} items written, the header says {}",
                path_.string(), written_, dims_[0]);
  const int rc = gzclose(as_gz(stream_));
  stream_ = nullptr;
  NUMERAL_CHECK(rc == Z_OK, "cannot write {}: closing failed (disk full?)", path_.string());
  file_->sync();
  finished_ = true;
}

void IdxStreamWriter::publish() {
  NUMERAL_CHECK(finished_, "IDX export {}: published before it was finished", path_.string());
  file_->publish();
}

void IdxStreamWriter::commit() {
  finish();
  publish();
}

torch::Tensor idx_pixels(const torch::Tensor& images) {
  NUMERAL_CHECK(images.dim() == 4, "idx_pixels: expected [N, C, H, W] images, got {} dimensions",
                images.dim());
  torch::Tensor pixels = images.to(torch::kCPU);
  if (pixels.scalar_type() != torch::kUInt8) pixels = from_model_range(pixels);
  if (pixels.size(1) == 1) return pixels.squeeze(1).contiguous();  // [N, H, W]
  return pixels.permute({0, 2, 3, 1}).contiguous();                // [N, H, W, C]
}

IdxExportPaths idx_export_paths(const std::string& prefix, int64_t image_channels) {
  NUMERAL_CHECK(!prefix.empty(), "--idx: empty prefix; expected e.g. out/train");
  NUMERAL_CHECK(prefix.back() != '/' && !std::filesystem::is_directory(prefix),
                "--idx {}: is a directory; expected a file prefix such as {}/train", prefix,
                std::filesystem::path(prefix).lexically_normal().string());
  std::string stem = prefix, suffix;
  if (ends_with(prefix, ".gz")) {
    stem = prefix.substr(0, prefix.size() - 3);
    suffix = ".gz";
  }
  NUMERAL_CHECK(!stem.empty() && stem.back() != '/', "--idx {}: expected a name before .gz",
                prefix);
  const char* rank = image_channels == 1 ? "idx3" : "idx4";
  return {stem + "-images-" + rank + "-ubyte" + suffix, stem + "-labels-idx1-ubyte" + suffix};
}

IdxExport::IdxExport(const std::string& prefix, int64_t count, bool labelled,
                     const std::vector<int64_t>& image_shape, bool overwrite)
    : overwrite_(overwrite) {
  NUMERAL_CHECK(count > 0, "IDX export: expected at least one image, got {}", count);
  NUMERAL_CHECK(image_shape.size() == 3, "IDX export: expected an image shape {{C, H, W}}");
  const int64_t c = image_shape[0], h = image_shape[1], w = image_shape[2];
  // IDX is MNIST's format: grey images. numeral reads colour IDX (idx4) but writes colour as PNGs.
  NUMERAL_CHECK(c == 1,
                "--idx {}: IDX files hold grey images and this model makes colour ({} channels); "
                "write them with --png-dir DIR",
                prefix, c);
  paths_ = idx_export_paths(prefix, c);
  dir_ = paths_.images.parent_path();
  stem_ =
      std::filesystem::path(ends_with(prefix, ".gz") ? prefix.substr(0, prefix.size() - 3) : prefix)
          .filename()
          .string();
  labelled_ = labelled;
  const auto existing = existing_files(/*own=*/true);
  NUMERAL_CHECK(overwrite_ || existing.empty(),
                "--idx {}: {} already exists (an earlier export?) and would be read with this "
                "one; replace that export whole with --overwrite, or choose another prefix",
                prefix, existing.empty() ? "" : existing.front().string());
  images_ = std::make_unique<IdxStreamWriter>(
      paths_.images,
      c == 1 ? std::vector<int64_t>{count, h, w} : std::vector<int64_t>{count, h, w, c});
  if (labelled)
    labels_ = std::make_unique<IdxStreamWriter>(paths_.labels, std::vector<int64_t>{count});
}

std::vector<std::filesystem::path> IdxExport::existing_files(bool own) const {
  const auto dir = dir_.empty() ? std::filesystem::path(".") : dir_;
  auto names = idx_file_names(dir, stem_, "images", {"3", "4"});
  const auto labels = idx_file_names(dir, stem_, "labels", {"1"});
  names.insert(names.end(), labels.begin(), labels.end());
  std::vector<std::filesystem::path> found;
  for (const auto& name : names) {
    const auto file = name.filename();
    const bool is_own =
        file == paths_.images.filename() || (labelled_ && file == paths_.labels.filename());
    std::error_code ec;
    if ((own || !is_own) && std::filesystem::exists(std::filesystem::symlink_status(name, ec))) {
      found.push_back(name);
    }
  }
  return found;
}

void IdxExport::append(const torch::Tensor& images, const torch::Tensor& labels) {
  if (labels_) {
    NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0),
                  "IDX export: expected {} labels, got shape {}", images.size(0), labels.sizes());
    const auto cpu = labels.to(torch::kCPU, torch::kLong);
    NUMERAL_CHECK(cpu.ge(0).all().item<bool>() && cpu.le(255).all().item<bool>(),
                  "IDX export: labels must be in [0, 255] in a labelled export");
    labels_->append(cpu.to(torch::kUInt8));
  }
  images_->append(idx_pixels(images));
}

void IdxExport::commit() {
  images_->finish();
  if (labels_) labels_->finish();
  const DirectoryLock lock(dir_.empty() ? std::filesystem::path(".") : dir_,
                           DirectoryLock::Mode::kExclusive);
  if (!overwrite_) {
    const auto existing = existing_files(/*own=*/true);
    NUMERAL_CHECK(existing.empty(),
                  "IDX export: {} appeared while this export ran; nothing was replaced",
                  existing.empty() ? "" : existing.front().string());
  }
  for (const auto& path : existing_files(/*own=*/false)) {  // the rest of the replaced export
    std::error_code ec;
    std::filesystem::remove(path, ec);
    NUMERAL_CHECK(!ec, "cannot replace the earlier export: removing {}: {}", path.string(),
                  ec.message());
  }
  images_->publish();
  if (labels_) labels_->publish();
}

}  // namespace numeral
