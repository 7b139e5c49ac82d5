#include "numeral/generate/request.h"

#include <fmt/format.h>
#include <unistd.h>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"

namespace numeral {

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

std::string format_guidance(const GenerateRequest& request) {
  std::string text = "w=" + format_weight(request.w);
  if (request.w_guide != 0) text += ", w_guide=" + format_weight(request.w_guide);
  const auto& interval = request.w_interval;
  if (interval.size() == 2) text += fmt::format(" at t {}..{}", interval[0], interval[1]);
  return text;
}

std::string guidance_additions(const std::vector<int64_t>& w_interval, double w_guide,
                               const std::string& guide) {
  std::string text;
  if (w_interval.size() == 2)
    text += fmt::format(", guided only at t {}..{}", w_interval[0], w_interval[1]);
  if (w_guide != 0)
    text += fmt::format(", autoguided by {} at w_guide {}", guide, format_weight(w_guide));
  return text;
}

std::string precision_addition(Precision precision) {
  return precision == Precision::float32 ? "" : ", network in " + to_string(precision);
}

}  // namespace numeral
