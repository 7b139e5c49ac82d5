#pragma once
// fmt support for LibTorch types that appear in messages: shapes print as [1, 28, 28].
#include <c10/util/ArrayRef.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

template <>
struct fmt::formatter<c10::ArrayRef<int64_t>> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(c10::ArrayRef<int64_t> shape, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "[{}]", fmt::join(shape.begin(), shape.end(), ", "));
  }
};
