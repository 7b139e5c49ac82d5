#pragma once
// An exponential moving average of a model's weights, used for sampling.
#include <torch/torch.h>

namespace numeral {

// Keeps `shadow`'s parameters as an EMA of `model`'s:
// shadow <- d * shadow + (1 - d) * model, with d = min(decay, (1 + n) / (10 + n)) at update n,
// so that the average follows the model closely early in short runs.
class EMA {
 public:
  EMA(torch::nn::Module& model, torch::nn::Module& shadow, double decay);
  // Folds the model's current weights into the shadow; `n` is the number of updates so far.
  void update(int64_t n);
  // The decay used at update n.
  double decay_at(int64_t n) const;
  // Copies the model's weights into the shadow exactly.
  void copy_from_model();

 private:
  std::vector<torch::Tensor> model_params_, shadow_params_;
  double decay_;
};

}  // namespace numeral
