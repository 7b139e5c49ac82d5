#include "numeral/data/image_folder.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"

namespace numeral {
namespace {

namespace F = torch::nn::functional;

bool is_hidden(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

bool has_image_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// The class folders of `dir`, sorted by name (hidden ones left out).
std::vector<std::filesystem::path> class_folders(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_directory() && !is_hidden(entry.path())) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The files of a class folder, sorted by name.
std::vector<std::filesystem::path> files_of(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (!entry.is_directory()) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool looks_like_image_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  for (const auto& folder : class_folders(dir)) {
    for (const auto& file : files_of(folder)) {
      if (has_image_extension(file)) return true;
    }
  }
  return false;
}

torch::Tensor decode_image(const std::string& bytes, const std::string& origin) {
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                            static_cast<int>(bytes.size()), &width, &height, &channels, 0),
      stbi_image_free);
  NUMERAL_CHECK(pixels != nullptr, "{}: not a readable PNG, JPEG or BMP image ({})", origin,
                stbi_failure_reason());
  auto hwc = torch::from_blob(pixels.get(), {height, width, channels}, torch::kUInt8).clone();
  // Grey + alpha -> grey; RGBA -> RGB.
  if (channels == 2) hwc = hwc.slice(2, 0, 1);
  if (channels == 4) hwc = hwc.slice(2, 0, 3);
  return hwc.permute({2, 0, 1}).contiguous();
}

torch::Tensor fit_image(const torch::Tensor& image, int64_t size, int64_t channels) {
  NUMERAL_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
                "fit_image: expected [1 or 3, H, W], got {}", image.sizes());
  return fit_images(image.unsqueeze(0), size, channels).squeeze(0);
}

namespace {

torch::Tensor fit_chunk(const torch::Tensor& chunk, int64_t size, int64_t channels) {
  auto x = chunk.to(torch::kFloat);  // [n, C, H, W]
  if (channels == 1 && x.size(1) == 3) {
    // ITU-R BT.601 luma, as PIL's convert("L").
    const auto w = torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1});
    x = (x * w).sum(1, true);
  } else if (channels == 3 && x.size(1) == 1) {
    x = x.expand({-1, 3, -1, -1});
  }
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t out_h = h <= w ? size : size * h / w;
  const int64_t out_w = h <= w ? size * w / h : size;
  if (out_h != h || out_w != w) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{out_h, out_w})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
  }
  const int64_t top = (out_h - size) / 2, left = (out_w - size) / 2;
  x = x.slice(2, top, top + size).slice(3, left, left + size);
  return x.round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

}  // namespace

torch::Tensor fit_images(const torch::Tensor& images, int64_t size, int64_t channels) {
  NUMERAL_CHECK(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3) &&
                    images.scalar_type() == torch::kUInt8,
                "fit_images: expected uint8 [N, 1 or 3, H, W], got {} {}", images.sizes(),
                c10::toString(images.scalar_type()));
  NUMERAL_CHECK(size >= 1 && (channels == 1 || channels == 3),
                "fit_images: size {} and channels {} (expected >= 1 and 1 or 3)", size, channels);
  if (images.size(1) == channels && images.size(2) == size && images.size(3) == size) return images;
  constexpr int64_t kChunk = 2048;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += kChunk) {
    out.push_back(
        fit_chunk(images.slice(0, i, std::min(i + kChunk, images.size(0))), size, channels));
  }
  return out.empty() ? torch::empty({0, channels, size, size}, torch::kUInt8) : torch::cat(out);
}

ImageFolderData read_image_folder(const std::filesystem::path& dir,
                                  const ImageFolderOptions& options) {
  std::error_code ec;
  NUMERAL_CHECK(std::filesystem::is_directory(dir, ec), "{}: no such directory", dir.string());
  NUMERAL_CHECK(options.image_size >= 0 &&
                    (options.channels == 0 || options.channels == 1 || options.channels == 3),
                "image folder {}: image size {} and channels {} (expected >= 0 and 0, 1 or 3)",
                dir.string(), options.image_size, options.channels);
  ImageFolderData out;
  std::vector<torch::Tensor> decoded;
  std::vector<int64_t> labels;
  const auto folders = class_folders(dir);
  NUMERAL_CHECK(!folders.empty(),
                "{}: no class folders; an image folder holds one subfolder per class "
                "(DIR/<class>/<image>.png)",
                dir.string());
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_directory() || is_hidden(entry.path())) {
      out.warnings.push_back(
          fmt::format("{}: skipped (not a class folder)", entry.path().string()));
    }
  }
  for (size_t k = 0; k < folders.size(); ++k) {
    int64_t count = 0;
    for (const auto& file : files_of(folders[k])) {
      if (is_hidden(file) || !has_image_extension(file)) {
        out.warnings.push_back(
            fmt::format("{}: skipped (not a .png, .jpg, .jpeg or .bmp file)", file.string()));
        continue;
      }
      decoded.push_back(decode_image(read_file(file), file.string()));
      labels.push_back(static_cast<int64_t>(k));
      ++count;
    }
    NUMERAL_CHECK(count > 0,
                  "{}: class folder '{}' has no images; remove it or add PNG, JPEG or BMP files",
                  dir.string(), folders[k].filename().string());
    out.class_names.push_back(folders[k].filename().string());
  }
  int64_t channels = options.channels;
  if (channels == 0) {
    channels = 1;
    for (const auto& image : decoded) {
      if (image.size(0) == 3) channels = 3;
    }
  }
  const int64_t size = options.image_size > 0
                           ? options.image_size
                           : std::min(decoded.front().size(1), decoded.front().size(2));
  std::vector<torch::Tensor> fitted;
  fitted.reserve(decoded.size());
  for (const auto& image : decoded) fitted.push_back(fit_image(image, size, channels));
  out.data = Dataset{torch::stack(fitted), torch::tensor(labels, torch::kInt64)};
  return out;
}

}  // namespace numeral
