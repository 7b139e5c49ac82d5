#pragma once
// numeral's one exception type and the check macro every module uses for user-facing errors.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace numeral {

// An error the user can act on: one line naming the function or file, the expectation and the
// value, optionally with a hint. Caught only in main(), which prints it and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws numeral::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace numeral

// Checks a user-facing precondition; the message is fmt-formatted only when it fails.
#define NUMERAL_CHECK(cond, ...)    \
  do {                              \
    if (!(cond)) {                  \
      ::numeral::fail(__VA_ARGS__); \
    }                               \
  } while (false)
