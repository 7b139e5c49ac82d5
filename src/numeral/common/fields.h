#pragma once
// Config fields defined once. Each config struct lists its fields in one `describe` function: the
// name (snake_case; the CLI flag is the same name with dashes), the member, the help text and the
// rule a value must meet. Everything that reads or writes a config goes through that list: the
// CLI's flags (apps/numeral/options.h), checkpoint JSON, HTTP requests (fields_from_json) and
// validation (check_fields), so a name, a default or a check cannot differ between them.
//
//   template <class V> void describe(SamplerOptions& s, V& v) {
//     v("steps", s.steps, "model evaluations", at_least(1));
//   }
//
// Choices are enums with one table of names (NUMERAL_ENUM_NAMES), which gives them their one
// parse/print pair, JSON conversion and fmt formatting.
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "numeral/common/error.h"

namespace numeral {

// An error about one named field of a config or request. The message names the field as the
// library knows it ("steps 0: expected at least 1"); the CLI rewrites the name to its flag
// ("--steps") and the server returns it as {"error": ..., "field": "steps"}.
class FieldError : public Error {
 public:
  FieldError(std::string field, const std::string& message)
      : Error(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Throws FieldError for `field` with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail_field(std::string field, fmt::format_string<Args...> format,
                             Args&&... args) {
  throw FieldError(std::move(field), fmt::format(format, std::forward<Args>(args)...));
}

#define NUMERAL_FIELD_CHECK(cond, field, ...)      \
  do {                                             \
    if (!(cond)) {                                 \
      ::numeral::fail_field((field), __VA_ARGS__); \
    }                                              \
  } while (false)

// ---- Enums with names ----

// Specialised by NUMERAL_ENUM_NAMES: the enum's values and their names, in order.
template <class E>
struct EnumNames : std::false_type {};

// Declares the names of enum E; use at namespace scope in namespace numeral:
//   NUMERAL_ENUM_NAMES(SamplerName, {SamplerName::ddpm, "ddpm"}, {SamplerName::ddim, "ddim"})
#define NUMERAL_ENUM_NAMES(E, ...)                                               \
  template <>                                                                    \
  struct EnumNames<E> : std::true_type {                                         \
    static const std::vector<std::pair<E, const char*>>& all() {                 \
      static const std::vector<std::pair<E, const char*>> names = {__VA_ARGS__}; \
      return names;                                                              \
    }                                                                            \
  }

template <class E>
constexpr bool kNamedEnum = EnumNames<E>::value;

// The names of every value of E: "ddpm, ddim or dpm++2m".
template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
std::string enum_choices() {
  std::string out;
  const auto& all = EnumNames<E>::all();
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) out += i + 1 == all.size() ? " or " : ", ";
    out += all[i].second;
  }
  return out;
}

template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
std::string to_string(E value) {
  for (const auto& [v, name] : EnumNames<E>::all()) {
    if (v == value) return name;
  }
  return fmt::format("<{}>", static_cast<int>(value));
}

// The value named `text`; throws FieldError naming `field` and the choices otherwise.
template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
E parse_enum(const std::string& text, const std::string& field) {
  for (const auto& [v, name] : EnumNames<E>::all()) {
    if (text == name) return v;
  }
  fail_field(field, "{} {}: expected {}", field, text, enum_choices<E>());
}

template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
std::ostream& operator<<(std::ostream& out, E value) {
  return out << to_string(value);
}

template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
void to_json(nlohmann::json& j, E value) {
  j = to_string(value);
}

template <class E, std::enable_if_t<kNamedEnum<E>, int> = 0>
void from_json(const nlohmann::json& j, E& value) {
  NUMERAL_CHECK(j.is_string(), "expected one of {}, got {}", enum_choices<E>(), j.dump());
  value = parse_enum<E>(j.get<std::string>(), "value");
}

// ---- Rules ----

// What a numeric value must meet: returns "" when it does, else what was expected ("expected at
// least 1"). Vectors are checked element by element. No rule: any value of the type.
struct Rule {
  std::function<std::string(double)> check;
  explicit operator bool() const { return static_cast<bool>(check); }
};

Rule at_least(double min);             // min <= v (and finite)
Rule between(double min, double max);  // min <= v <= max (and finite)
Rule above(double min);                // min < v (and finite)
Rule finite();                         // any finite number
Rule probability_open();               // 0 < v < 1
Rule unit_interval_open_top();         // 0 <= v < 1

// "3", "0.25", "[64, 64, 128]", "ddim", "true": a value as messages print it.
template <class T>
std::string field_value_text(const T& value) {
  if constexpr (kNamedEnum<T>) {
    return to_string(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, double>) {
    return fmt::format("{:g}", value);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    return fmt::format("{}", fmt::join(value, ","));
  } else {
    return fmt::format("{}", value);
  }
}

// Throws FieldError("{name} {value}: {expected}") unless `value` meets `rule`.
template <class T>
void check_rule(const char* name, const T& value, const Rule& rule) {
  if (!rule) return;
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    const std::string expected = rule.check(static_cast<double>(value));
    NUMERAL_FIELD_CHECK(expected.empty(), name, "{} {}: {}", name, field_value_text(value),
                        expected);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    for (int64_t v : value) {
      const std::string expected = rule.check(static_cast<double>(v));
      NUMERAL_FIELD_CHECK(expected.empty(), name, "{} {}: {} (each)", name, field_value_text(value),
                          expected);
    }
  }
}

// ---- Visitors over describe() ----

// Checks every field of `config` against its rule; throws FieldError on the first that fails.
template <class C>
void check_fields(const C& config) {
  auto visit = [](const char* name, const auto& member, const char* /*help*/,
                  const Rule& rule = {}) { check_rule(name, member, rule); };
  describe(const_cast<C&>(config), visit);
}

// Every field of `config` as a JSON object, by name.
template <class C>
nlohmann::json fields_to_json(const C& config) {
  nlohmann::json j = nlohmann::json::object();
  auto visit = [&j](const char* name, const auto& member, const char* /*help*/,
                    const Rule& /*rule*/ = {}) { j[name] = member; };
  describe(const_cast<C&>(config), visit);
  return j;
}

// The names of every field of `config`.
template <class C>
std::vector<std::string> field_names(C& config) {
  std::vector<std::string> names;
  auto visit = [&names](const char* name, const auto& /*member*/, const char* /*help*/,
                        const Rule& /*rule*/ = {}) { names.emplace_back(name); };
  describe(config, visit);
  return names;
}

// Reads one JSON value into `member`, naming `name` when the type is wrong.
template <class T>
void read_field(const nlohmann::json& value, const char* name, T& member) {
  auto wrong = [&](const char* expected) {
    fail_field(name, "{}: expected {}, got {}", name, expected, value.dump());
  };
  if constexpr (kNamedEnum<T>) {
    if (!value.is_string()) wrong(("one of " + enum_choices<T>()).c_str());
    member = parse_enum<T>(value.get<std::string>(), name);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) wrong("true or false");
    member = value.get<bool>();
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    if (value.is_number_integer() && value.get<int64_t>() < 0) wrong("an integer >= 0");
    if (!value.is_number_integer()) wrong("an integer >= 0");
    member = value.get<uint64_t>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!value.is_number_integer()) wrong("an integer");
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{INT64_MAX}) {
      wrong("an integer that fits 64 bits");
    }
    member = value.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) wrong("a number");
    member = value.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) wrong("a string");
    member = value.get<std::string>();
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (!value.is_array()) wrong("an array of integers");
    std::vector<int64_t> out;
    for (const auto& e : value) {
      if (!e.is_number_integer()) wrong("an array of integers");
      out.push_back(e.get<int64_t>());
    }
    member = std::move(out);
  } else {
    static_assert(sizeof(T) == 0, "read_field: unsupported field type");
  }
}

// The first field of `now` whose value differs in `was` (or that `was` lacks), with both values
// as JSON text ("absent" where missing); empty (false) when every field of `now` matches. For
// errors that name what differs between two configs: "its model has channels [8,32], this one
// [8,16]".
struct FieldDifference {
  std::string field, was, now;
  explicit operator bool() const { return !field.empty(); }
};
FieldDifference first_difference(const nlohmann::json& was, const nlohmann::json& now);

// How fields_from_json treats what the JSON holds.
struct JsonFields {
  const char* what = "config";  // names the object in errors: "request", "model config"
  bool refuse_unknown = true;   // an unknown key is an error (a typo never passes silently)
  bool check = true;            // apply each field's rule to the values read
};

// Reads the fields present in `j` into `config` (absent ones keep their values). Throws FieldError
// naming the field for a wrong type, an unknown key or a value its rule refuses.
template <class C>
void fields_from_json(const nlohmann::json& j, C& config, const JsonFields& how = {}) {
  NUMERAL_CHECK(j.is_object(), "{}: expected a JSON object, got {}", how.what, j.type_name());
  auto visit = [&](const char* name, auto& member, const char* /*help*/, const Rule& rule = {}) {
    const auto it = j.find(name);
    if (it == j.end()) return;
    read_field(*it, name, member);
    if (how.check) check_rule(name, member, rule);
  };
  describe(config, visit);
  if (how.refuse_unknown) {
    const std::vector<std::string> names = field_names(config);
    for (const auto& [key, value] : j.items()) {
      if (std::find(names.begin(), names.end(), key) == names.end()) {
        fail_field(key, "{}: unknown field \"{}\" (known: {})", how.what, key,
                   fmt::join(names, ", "));
      }
    }
  }
}

}  // namespace numeral

// fmt prints a named enum by its name.
template <class E>
struct fmt::formatter<E, char, std::enable_if_t<numeral::kNamedEnum<E>>>
    : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(E value, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(numeral::to_string(value), ctx);
  }
};
