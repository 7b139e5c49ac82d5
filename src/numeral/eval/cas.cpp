#include "numeral/eval/cas.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "numeral/data/dataset.h"
#include "numeral/eval/metrics.h"

namespace numeral {

CasReport classification_accuracy_score(const TrainedClassifier& judge, const torch::Tensor& images,
                                        const torch::Tensor& labels, const RealReference& real,
                                        const CasOptions& options) {
  auto say = [&](const std::string& line) {
    if (options.print) options.print(line);
  };
  CasReport cas;
  ClassifierTrainConfig recipe = judge.train;
  if (options.epochs > 0) recipe.epochs = options.epochs;
  recipe.seed = options.seed;
  cas.epochs = recipe.epochs;
  const int64_t n = images.size(0);
  cas.train_images = std::min(n, real.train_x.size(0));
  const auto device = judge.model->parameters().front().device();
  const auto start = std::chrono::steady_clock::now();
  auto train_and_test = [&](const torch::Tensor& x, const torch::Tensor& y) {
    torch::manual_seed(options.seed);
    DigitClassifier fresh(judge.config);
    fresh->to(device);
    train_classifier(fresh, recipe, x, y);
    return accuracy(classify(fresh, real.val_x).logits, real.val_y).overall;
  };
  say(fmt::format("CAS: training a classifier on the {} samples ({} epochs)", n, recipe.epochs));
  cas.synthetic = train_and_test(images, labels);
  const auto perm = seeded_permutation(real.train_x.size(0), options.seed + 2);
  const auto idx = torch::tensor(
      std::vector<int64_t>(perm.begin(), perm.begin() + cas.train_images), torch::kLong);
  say(fmt::format("CAS: training a classifier on {} real training {} ({} epochs)", cas.train_images,
                  item_noun(real.class_names), recipe.epochs));
  cas.real = train_and_test(real.train_x.index_select(0, idx), real.train_y.index_select(0, idx));
  cas.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return cas;
}

}  // namespace numeral
