#pragma once
// fmt support for LibTorch types that appear in messages: shapes print as [1, 28, 28].
#include <c10/util/ArrayRef.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <string>

template <>
struct fmt::formatter<c10::ArrayRef<int64_t>> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(c10::ArrayRef<int64_t> shape, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "[{}]", fmt::join(shape.begin(), shape.end(), ", "));
  }
};

namespace numeral {

// 10000 -> "10,000": counts in messages and reports.
inline std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return n < 0 ? "-" + digits : digits;
}

}  // namespace numeral
