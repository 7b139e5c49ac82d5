#include "numeral/train/ema.h"

#include <algorithm>

#include "numeral/common/error.h"

namespace numeral {

EMA::EMA(torch::nn::Module& model, torch::nn::Module& shadow, double decay)
    : model_params_(model.parameters()), shadow_params_(shadow.parameters()), decay_(decay) {
  NUMERAL_CHECK(model_params_.size() == shadow_params_.size(),
                "EMA: model and shadow have different parameter counts ({} vs {})",
                model_params_.size(), shadow_params_.size());
  for (auto& p : shadow_params_) p.set_requires_grad(false);
}

double EMA::decay_at(int64_t n) const {
  return std::min(decay_, (1.0 + static_cast<double>(n)) / (10.0 + static_cast<double>(n)));
}

void EMA::update(int64_t n) {
  torch::NoGradGuard no_grad;
  const double d = decay_at(n);
  for (size_t i = 0; i < model_params_.size(); ++i) {
    shadow_params_[i].lerp_(model_params_[i], 1.0 - d);
  }
}

void EMA::copy_from_model() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_params_.size(); ++i) shadow_params_[i].copy_(model_params_[i]);
}

}  // namespace numeral
