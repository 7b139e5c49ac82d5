// The shipped models' images for fixed seeds, pinned for every sampler: a refactor of the
// generation path must leave them unchanged (up to float rounding).
// tests/golden/shipped.safetensors is written by this test with NUMERAL_WRITE_GOLDEN=1: first
// before the inference API (issue 14) existed, again only when the shipped models themselves change
// (last: 2026-12-07, v2 of mnist.safetensors and its new student; then its bundled guide added one
// case, the old ones unchanged).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "numeral/inference/pipeline.h"
#include "numeral/io/safetensors.h"
#include "test_util.h"

namespace numeral {
namespace {

const fs::path kGolden = fs::path(NUMERAL_SOURCE_DIR) / "tests/golden/shipped.safetensors";

struct GoldenCase {
  std::string name;   // the tensor's name in the fixture
  std::string model;  // models/<model>
  GenerateRequest request;
};

// Four digits per case, every sampler (and eta, variance and spacing variants) on the teacher at
// a few steps, and the student at its own 4 steps, at two guidance weights each.
std::vector<GoldenCase> golden_cases() {
  auto request = [](SamplerName sampler, int64_t steps, double w) {
    GenerateRequest r;
    r.classes = {0, 3, 7, 9};
    r.per_class = 1;
    r.sampler.name = sampler;
    r.sampler.steps = steps;
    r.w = w;
    r.seed = 1234;
    return r;
  };
  std::vector<GoldenCase> cases = {
      {"ddpm10_w0.25", "mnist", request(SamplerName::ddpm, 10, 0.25)},
      {"ddpm8_w2", "mnist", request(SamplerName::ddpm, 8, 2)},
      {"ddim10_w0.25", "mnist", request(SamplerName::ddim, 10, 0.25)},
      {"dpm10_w0.25", "mnist", request(SamplerName::dpmpp_2m, 10, 0.25)},
      {"dpm6_w1", "mnist", request(SamplerName::dpmpp_2m, 6, 1)},
      {"student_w0.25", "mnist-student", request(SamplerName::ddim, 0, 0.25)},
      {"student_w1", "mnist-student", request(SamplerName::ddim, 0, 1)},
  };
  GenerateRequest eta = request(SamplerName::ddim, 10, 0.25);
  eta.sampler.eta = 0.5;
  cases.push_back({"ddim10_eta0.5", "mnist", eta});
  GenerateRequest beta = request(SamplerName::ddpm, 10, 0.25);
  beta.sampler.variance = Variance::beta;
  cases.push_back({"ddpm10_beta", "mnist", beta});
  GenerateRequest trailing = request(SamplerName::ddim, 8, 0.25);
  trailing.sampler.spacing = Spacing::trailing;
  cases.push_back({"ddim8_trailing", "mnist", trailing});
  GenerateRequest autoguided = request(SamplerName::ddpm, 10, 0.25);
  autoguided.w_guide = 2;  // against the guide the file bundles
  cases.push_back({"ddpm10_w0.25_guide2", "mnist", autoguided});
  return cases;
}

TEST(Golden, ShippedModelsImagesForFixedSeedsAreUnchanged) {
  const bool write = std::getenv("NUMERAL_WRITE_GOLDEN") != nullptr;
  TensorFile golden;
  if (!write) golden = load_safetensors(kGolden);
  std::map<std::string, Pipeline> pipelines;
  for (const GoldenCase& c : golden_cases()) {
    if (!pipelines.count(c.model)) {
      pipelines.emplace(
          c.model, Pipeline(fs::path(NUMERAL_SOURCE_DIR) / "models" / (c.model + ".safetensors"),
                            torch::kCPU));
    }
    const torch::Tensor images = pipelines.at(c.model).generate(c.request).images;
    ASSERT_EQ(images.sizes(), (std::vector<int64_t>{4, 1, 28, 28})) << c.name;
    if (write) {
      golden.tensors.emplace(c.name, images);
      continue;
    }
    ASSERT_TRUE(golden.tensors.count(c.name)) << c.name << " is not in " << kGolden;
    const double diff = (images - golden.tensors.at(c.name)).abs().max().item<double>();
    EXPECT_LT(diff, 2e-3) << c.name << ": the images moved by up to " << diff;
  }
  if (write) save_safetensors(kGolden, golden);
}

// The guidance weights each shipped file samples with when a request names none, chosen by
// `numeral eval sweep` (models/README.md), and the teacher's bundled autoguidance guide (its first
// leg, v1): a re-export that dropped them would change what `numeral sample` makes without
// touching a weight.
TEST(Golden, ShippedModelsDefaultGuidanceWeights) {
  const fs::path models = fs::path(NUMERAL_SOURCE_DIR) / "models";
  const TrainedModel teacher = load_trained_model(models / "mnist.safetensors", torch::kCPU);
  EXPECT_EQ(teacher.default_w, kDefaultGuidance);
  EXPECT_EQ(teacher.default_w_guide, 2);
  ASSERT_TRUE(teacher.guide);
  EXPECT_EQ(teacher.guide->state.at("step"), 4500);
  EXPECT_EQ(teacher.guide->state.at("train_fingerprint"), teacher.state.at("train_fingerprint"));
  const TrainedModel student =
      load_trained_model(models / "mnist-student.safetensors", torch::kCPU);
  EXPECT_EQ(student.default_w, 0.15);
  EXPECT_EQ(student.default_w_guide, 0);
}

}  // namespace
}  // namespace numeral
