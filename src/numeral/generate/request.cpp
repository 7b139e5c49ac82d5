#include "numeral/generate/request.h"

#include <fmt/format.h>
#include <unistd.h>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"

namespace numeral {

std::vector<int64_t> resolve_classes(const std::vector<int64_t>& requested, int64_t num_classes) {
  if (requested.empty()) {
    std::vector<int64_t> all(static_cast<size_t>(num_classes));
    for (int64_t c = 0; c < num_classes; ++c) all[static_cast<size_t>(c)] = c;
    return all;
  }
  for (int64_t c : requested) {
    NUMERAL_CHECK(c >= 0 && c < num_classes,
                  "--digit {}: out of range; this model has {} classes (0 to {})", c, num_classes,
                  num_classes - 1);
  }
  return requested;
}

void check_output_path(const std::filesystem::path& path, const std::string& flag) {
  namespace fs = std::filesystem;
  check_output_target(path, flag);
  fs::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  fs::create_directories(parent, ec);
  NUMERAL_CHECK(!ec && fs::is_directory(parent), "{} {}: cannot create directory {}: {}", flag,
                path.string(), parent.string(), ec ? ec.message() : "a file is in the way");
  NUMERAL_CHECK(::access(parent.c_str(), W_OK) == 0, "{} {}: directory {} is not writable", flag,
                path.string(), parent.string());
}

int64_t request_size(int64_t per_class, int64_t rows, const std::string& flag) {
  NUMERAL_CHECK(per_class >= 1 && rows >= 1, "{} {}: expected at least 1", flag, per_class);
  const int64_t most = kMaxRequestImages / rows;
  NUMERAL_CHECK(per_class <= most,
                "{} {}: at most {} for {} row{} ({} images in one request, the most an IDX file "
                "can count)",
                flag, per_class, with_commas(most), rows, rows == 1 ? "" : "s",
                with_commas(kMaxRequestImages));
  return per_class * rows;
}

std::string format_weight(double w) {
  return fmt::format("{:g}", w);
}

}  // namespace numeral
