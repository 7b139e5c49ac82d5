#include "numeral/generate/export.h"

#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "numeral/common/error.h"
#include "numeral/data/dataset.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/train/trainer.h"

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
  NUMERAL_CHECK(!std::filesystem::is_directory(path_), "cannot write {}: it is a directory",
                path_.string());
  std::string header;
  put_be32(header, 0x00000800u | static_cast<uint32_t>(dims_.size()));
  for (size_t i = 0; i < dims_.size(); ++i) {
    NUMERAL_CHECK(dims_[i] > 0 && dims_[i] <= INT32_MAX,
                  "IDX export {}: dimension {} is {}, expected 1 to {}", path_.string(), i,
                  dims_[i], INT32_MAX);
    put_be32(header, static_cast<uint32_t>(dims_[i]));
    if (i > 0) item_bytes_ *= dims_[i];
  }
  const auto parent = path_.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    NUMERAL_CHECK(!ec, "cannot create directory {}: {}", parent.string(), ec.message());
  }
  static std::atomic<int> counter{0};
  tmp_ = parent / fmt::format(".{}.{}.{}.tmp", path_.filename().string(), ::getpid(), counter++);
  const bool gz = ends_with(path_.filename().string(), ".gz");
  // "T": transparent (plain) writing through the same zlib calls.
  errno = 0;
  gzFile file = gzopen(tmp_.c_str(), gz ? "wb6" : "wbT");
  NUMERAL_CHECK(file != nullptr, "cannot write {}: {}", path_.string(),
                errno ? std::strerror(errno) : "cannot open a file there");
  file_ = file;
  gzbuffer(file, 1 << 20);
  if (gzwrite(file, header.data(), static_cast<unsigned>(header.size())) !=
      static_cast<int>(header.size())) {
    discard();
    fail("cannot write {}: write failed", path_.string());
  }
}

IdxStreamWriter::~IdxStreamWriter() {
  if (!committed_) discard();
}

void IdxStreamWriter::discard() noexcept {
  if (file_ != nullptr) gzclose(as_gz(file_));
  file_ = nullptr;
  std::error_code ignored;
  std::filesystem::remove(tmp_, ignored);
}

void IdxStreamWriter::append(const torch::Tensor& data) {
  NUMERAL_CHECK(file_ != nullptr && !committed_, "IDX export {}: append after commit",
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
    if (gzwrite(as_gz(file_), p, chunk) != static_cast<int>(chunk)) {
      int code = Z_OK;
      const char* message = gzerror(as_gz(file_), &code);
      fail("cannot write {}: {}", path_.string(), code == Z_ERRNO ? std::strerror(errno) : message);
    }
    p += chunk;
    left -= chunk;
  }
  written_ += n;
}

void IdxStreamWriter::commit() {
  NUMERAL_CHECK(file_ != nullptr && !committed_, "IDX export {}: committed twice", path_.string());
  NUMERAL_CHECK(written_ == dims_[0], "IDX export {}: {} items written, the header says {}",
                path_.string(), written_, dims_[0]);
  const int rc = gzclose(as_gz(file_));
  file_ = nullptr;
  NUMERAL_CHECK(rc == Z_OK, "cannot write {}: closing failed (disk full?)", path_.string());
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  NUMERAL_CHECK(!ec, "cannot write {}: rename failed: {}", path_.string(), ec.message());
  committed_ = true;
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

IdxExport::IdxExport(const std::string& prefix, const torch::Tensor& labels,
                     const std::vector<int64_t>& image_shape) {
  NUMERAL_CHECK(labels.dim() == 1 && labels.size(0) > 0, "IDX export: expected [N] labels");
  NUMERAL_CHECK(image_shape.size() == 3, "IDX export: expected an image shape {{C, H, W}}");
  const int64_t n = labels.size(0), c = image_shape[0], h = image_shape[1], w = image_shape[2];
  paths_ = idx_export_paths(prefix, c);
  const auto cpu_labels = labels.to(torch::kCPU, torch::kLong);
  const bool unconditional = cpu_labels.lt(0).all().item<bool>();
  NUMERAL_CHECK(unconditional ||
                    (cpu_labels.ge(0).all().item<bool>() && cpu_labels.le(255).all().item<bool>()),
                "IDX export: labels must all be in [0, 255] (or all unconditional)");
  images_ = std::make_unique<IdxStreamWriter>(
      paths_.images, c == 1 ? std::vector<int64_t>{n, h, w} : std::vector<int64_t>{n, h, w, c});
  if (!unconditional) {
    labels_ = std::make_unique<IdxStreamWriter>(paths_.labels, std::vector<int64_t>{n});
    labels_->append(cpu_labels.to(torch::kUInt8));
  }
}

void IdxExport::append(const torch::Tensor& images) {
  images_->append(idx_pixels(images));
}

void IdxExport::commit() {
  images_->commit();
  if (labels_) labels_->commit();
}

}  // namespace numeral
