#include "numeral/common/fields.h"

namespace numeral {

FieldDifference first_difference(const nlohmann::json& was, const nlohmann::json& now) {
  for (const auto& [field, value] : now.items()) {
    const auto it = was.find(field);
    if (it == was.end()) return {field, "absent", value.dump()};
    if (*it != value) return {field, it->dump(), value.dump()};
  }
  return {};
}

Rule at_least(double min) {
  return {[min](double v) {
    return std::isfinite(v) && v >= min ? std::string()
                                        : fmt::format("expected at least {:g}", min);
  }};
}

Rule between(double min, double max) {
  return {[min, max](double v) {
    return std::isfinite(v) && v >= min && v <= max
               ? std::string()
               : fmt::format("expected {:g} to {:g}", min, max);
  }};
}

Rule above(double min) {
  return {[min](double v) {
    return std::isfinite(v) && v > min ? std::string()
                                       : fmt::format("expected more than {:g}", min);
  }};
}

Rule finite() {
  return {[](double v) { return std::isfinite(v) ? std::string() : "expected a finite number"; }};
}

Rule probability_open() {
  return {[](double v) { return v > 0 && v < 1 ? std::string() : "expected 0 < value < 1"; }};
}

Rule unit_interval_open_top() {
  return {[](double v) { return v >= 0 && v < 1 ? std::string() : "expected 0 <= value < 1"; }};
}

}  // namespace numeral
