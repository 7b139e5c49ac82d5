#include "numeral/inference/request.h"

namespace numeral {

int64_t GenerateRequest::count(int64_t num_classes) const {
  const auto rows = classes.empty() ? num_classes : static_cast<int64_t>(classes.size());
  return per_class * rows;
}

}  // namespace numeral
