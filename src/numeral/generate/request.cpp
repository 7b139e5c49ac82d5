#include "numeral/generate/request.h"

#include <fmt/format.h>
#include <unistd.h>

#include "numeral/common/error.h"

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
  NUMERAL_CHECK(!path.empty(), "{}: empty output path", flag);
  NUMERAL_CHECK(!fs::is_directory(path), "{} {}: is a directory; expected a file name", flag,
                path.string());
  fs::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  fs::create_directories(parent, ec);
  NUMERAL_CHECK(!ec && fs::is_directory(parent), "{} {}: cannot create directory {}: {}", flag,
                path.string(), parent.string(), ec ? ec.message() : "a file is in the way");
  NUMERAL_CHECK(::access(parent.c_str(), W_OK) == 0, "{} {}: directory {} is not writable", flag,
                path.string(), parent.string());
}

std::string format_weight(double w) {
  return fmt::format("{:g}", w);
}

}  // namespace numeral
