// Generation: sampler arithmetic against hand computation, oracle denoisers, guidance, seeding,
// streaming IDX export, the pictures, and the generation commands through the CLI binary.
#include <fmt/format.h>
#include <gif_lib.h>
#include <gtest/gtest.h>
#include <stb_image.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/idx.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/generate/export.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "numeral/inference/generate.h"
#include "numeral/inference/pipeline.h"
#include "numeral/io/checkpoint.h"
#include "numeral/io/image.h"
#include "numeral/model/layers.h"
#include "numeral/train/trainer.h"
#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

// The tiny configuration every model test uses: 28x28 grey, widths {8, 16}, T = 10.
RunConfig tiny_config() {
  RunConfig c;
  c.model.channels = {8, 16};
  c.model.groups = 4;
  c.model.time_embed_dim = 16;
  c.model.class_embed_dim = 16;
  c.diffusion.timesteps = 10;
  return c;
}

struct TinyModel {
  UNet model{nullptr};
  std::shared_ptr<GaussianDiffusion> diffusion;
};

TinyModel tiny_model(uint64_t init_seed = 0) {
  torch::manual_seed(init_seed);
  const RunConfig c = tiny_config();
  TinyModel m{UNet(c.model), std::make_shared<GaussianDiffusion>(c.diffusion, torch::kCPU)};
  m.model->eval();
  return m;
}

// The tiny model as the inference API loads a model.
TrainedModel trained_of(const TinyModel& m, const std::string& path = "tiny") {
  TrainedModel trained;
  trained.config = tiny_config();
  trained.model = m.model;
  trained.diffusion = m.diffusion;
  trained.path = path;
  return trained;
}

// A freshly initialised model of config `c` as the inference API loads a model.
TrainedModel trained_with(const RunConfig& c, const std::string& path) {
  TrainedModel trained;
  trained.config = c;
  trained.model = UNet(c.model);
  trained.diffusion = std::make_shared<GaussianDiffusion>(c.diffusion, torch::kCPU);
  trained.path = path;
  return trained;
}

// The tiny model behind the inference API, executed as `o` says.
Pipeline pipeline_of(const TinyModel& m, const GenerateOptions& o) {
  return Pipeline(trained_of(m), execution_of(o));
}

// One image of each of `classes`, sampled as `o` says.
GenerateRequest one_each(const std::vector<int64_t>& classes, const GenerateOptions& o) {
  GenerateRequest r = request_of(o);
  r.classes = classes;
  r.per_class = 1;
  return r;
}

// A checkpoint laid out as Trainer::save_checkpoint_now writes it (minus optimizer and RNG).
fs::path save_tiny_checkpoint(const fs::path& dir) {
  const TinyModel m = tiny_model(7);
  Checkpoint c;
  c.kind = "diffusion";
  c.config = tiny_config();
  c.state = {{"step", 0}};
  c.tensors = module_state(*m.model, "model.");
  for (auto& [name, t] : module_state(*m.model, "ema.")) c.tensors.emplace(name, t);
  const fs::path path = dir / "checkpoint.safetensors";
  save_checkpoint(path, c);
  return path;
}

std::string read_bytes(const fs::path& path) {
  return read_file(path);
}

// ---------------------------------------------------------------------------------------------
// Sampler arithmetic, one step at a time, against the schedule's own coefficients.

struct Recorder {
  std::vector<SamplerStep> steps;
  std::function<void(const SamplerStep&)> callback() {
    return [this](const SamplerStep& s) { steps.push_back(s); };
  }
};

constexpr double kEps = 0.37;  // what the constant denoiser predicts everywhere

Denoiser constant_denoiser() {
  return [](const torch::Tensor& x, const torch::Tensor&) { return torch::full_like(x, kEps); };
}

torch::Tensor toy_x_T() {  // double, so the comparison with hand arithmetic is tight
  return torch::tensor({0.3, -0.5, 1.2, 0.1}, torch::kDouble).view({1, 1, 2, 2});
}

double at(const torch::Tensor& coefficient, int64_t t) {
  return coefficient[t].item<double>();
}

class SamplerArithmetic : public ::testing::Test {
 protected:
  NoiseSchedule s = NoiseSchedule::from_config(tiny_config().diffusion);  // float64, T = 10
  // x_0 from eps (no clipping): (x - sqrt(1 - abar_t) eps) / sqrt(abar_t).
  torch::Tensor x0_hand(const torch::Tensor& x, int64_t t) const {
    return (x - at(s.sqrt_one_minus_alphas_cumprod, t) * kEps) / at(s.sqrt_alphas_cumprod, t);
  }
};

TEST_F(SamplerArithmetic, OneDdpmStepIsThePosteriorMeanPlusScaledNoise) {
  Recorder rec;
  SamplerOptions o;
  o.name = SamplerName::ddpm;
  o.clip_x0 = false;
  o.on_step = rec.callback();
  auto gen = make_generator(11);
  const auto x_T = toy_x_T();
  const auto out = sample(s, constant_denoiser(), x_T, o, gen);
  ASSERT_EQ(rec.steps.size(), 10u);
  EXPECT_EQ(rec.steps[0].t, 9);
  // DDPM eq. 7 at t = 9 with the schedule's posterior coefficients; the first draw of the
  // generator is this step's noise.
  auto replay = make_generator(11);
  const auto z = randn_on({1, 1, 2, 2}, replay, torch::kCPU).to(torch::kDouble);
  const auto x0 = x0_hand(x_T, 9);
  const auto expected = at(s.posterior_mean_coef1, 9) * x0 + at(s.posterior_mean_coef2, 9) * x_T +
                        std::sqrt(at(s.posterior_variance, 9)) * z;
  EXPECT_TRUE(torch::allclose(rec.steps[0].x0, x0, 0, 1e-12));
  // sqrt(beta~) z is a float32 product (the noise is float32), hence 1e-6.
  EXPECT_TRUE(torch::allclose(rec.steps[1].x_t, expected, 0, 1e-6))
      << (rec.steps[1].x_t - expected).abs().max().item<double>();
  // The last step (t = 0) adds no noise and returns the x_0 estimate.
  EXPECT_TRUE(torch::allclose(out, x0_hand(rec.steps[9].x_t, 0), 0, 1e-9));
}

TEST_F(SamplerArithmetic, OneDdimStepFollowsEquation12) {
  Recorder rec;
  SamplerOptions o;
  o.name = SamplerName::ddim;
  o.steps = 10;
  o.clip_x0 = false;
  o.on_step = rec.callback();
  auto gen = make_generator(0);
  const auto x_T = toy_x_T();
  sample(s, constant_denoiser(), x_T, o, gen);
  ASSERT_EQ(rec.steps.size(), 10u);
  // eta = 0: x_{t-1} = sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1}) eps, from t = 9 to t = 8.
  const auto expected = at(s.sqrt_alphas_cumprod, 8) * x0_hand(x_T, 9) +
                        at(s.sqrt_one_minus_alphas_cumprod, 8) * kEps;
  EXPECT_TRUE(torch::allclose(rec.steps[1].x_t, expected, 0, 1e-10));
  EXPECT_EQ(rec.steps[1].t, 8);
}

TEST_F(SamplerArithmetic, DpmSolverPlusPlusFirstAndSecondOrderSteps) {
  Recorder rec;
  SamplerOptions o;
  o.name = SamplerName::dpmpp_2m;
  o.steps = 3;
  o.clip_x0 = false;
  o.on_step = rec.callback();
  auto gen = make_generator(0);
  const auto x_T = toy_x_T();
  const auto out = sample(s, constant_denoiser(), x_T, o, gen);
  ASSERT_EQ(sampling_timesteps(10, 3), (std::vector<int64_t>{9, 5, 0}));
  ASSERT_EQ(rec.steps.size(), 3u);
  auto alpha = [&](int64_t t) { return at(s.sqrt_alphas_cumprod, t); };
  auto sigma = [&](int64_t t) { return at(s.sqrt_one_minus_alphas_cumprod, t); };
  auto lambda = [&](int64_t t) { return std::log(alpha(t) / sigma(t)); };
  // Lu et al. 2022, Algorithm 2. Step 1 (first order): t = 9 -> 5.
  const double h1 = lambda(5) - lambda(9);
  const auto d9 = x0_hand(x_T, 9);
  const auto x5 = (sigma(5) / sigma(9)) * x_T - alpha(5) * std::expm1(-h1) * d9;
  EXPECT_TRUE(torch::allclose(rec.steps[1].x_t, x5, 0, 1e-10));
  // Step 2 (second order, r = h1 / h2): t = 5 -> 0.
  const double h2 = lambda(0) - lambda(5);
  const double r = h1 / h2;
  const auto d = (1 + 1 / (2 * r)) * x0_hand(x5, 5) - (1 / (2 * r)) * d9;
  const auto x0_step = (sigma(0) / sigma(5)) * x5 - alpha(0) * std::expm1(-h2) * d;
  EXPECT_TRUE(torch::allclose(rec.steps[2].x_t, x0_step, 0, 1e-10));
  // Final step: the data prediction at t = 0.
  EXPECT_TRUE(torch::allclose(out, x0_hand(x0_step, 0), 0, 1e-10));
}

// Returns the noise that turns x0 into x_t exactly: eps = (x_t - sqrt(abar_t) x0) / sqrt(1-abar_t).
Denoiser oracle(const NoiseSchedule& s, const torch::Tensor& x0) {
  return [s, x0](const torch::Tensor& x, const torch::Tensor& t) {
    return (x - extract(s.sqrt_alphas_cumprod, t) * x0) /
           extract(s.sqrt_one_minus_alphas_cumprod, t);
  };
}

TEST(Oracle, DeterministicSamplersRecoverX0) {
  const NoiseSchedule s = NoiseSchedule::from_config(tiny_config().diffusion);
  torch::manual_seed(3);
  const auto x0 = torch::rand({2, 1, 4, 4}, torch::kDouble) * 1.8 - 0.9;
  const auto x_T = torch::randn({2, 1, 4, 4}, torch::kDouble);
  for (const char* name : {"ddim", "dpm++2m", "ddpm"}) {
    for (int64_t steps : {1, 4, 10}) {
      SamplerOptions o;
      o.name = parse_enum<SamplerName>(name, "sampler");
      o.steps = steps;
      auto gen = make_generator(5);
      const auto out = sample(s, oracle(s, x0), x_T, o, gen);
      EXPECT_TRUE(torch::allclose(out, x0, 0, 1e-8)) << name << " with " << steps << " steps";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Classifier-free guidance.

TEST(Guidance, FormulaAndOneBatchedForward) {
  const auto c = torch::tensor({1.0, 2.0}), u = torch::tensor({0.5, -1.0});
  EXPECT_TRUE(torch::allclose(guided_eps(c, u, 2.0), torch::tensor({2.0, 8.0})));
  EXPECT_TRUE(torch::allclose(guided_eps(c, u, 0.0), c));

  std::vector<torch::Tensor> calls;  // labels of each forward pass
  // A fake model whose "noise" is the label: eps(y) = y, eps(null) = -1.
  const ModelFn fake = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    EXPECT_EQ(x.size(0), y.size(0));
    EXPECT_EQ(t.size(0), y.size(0));
    calls.push_back(y.clone());
    return y.to(torch::kFloat).view({-1, 1, 1, 1}).expand(x.sizes()).clone();
  };
  const auto labels = torch::tensor({3, 7, 0}, torch::kLong);
  const auto x = torch::zeros({3, 1, 2, 2});
  const auto t = torch::full({3}, 4, torch::kLong);
  const double w = 1.5;
  const auto eps = classifier_free_guidance(fake, labels, w)(x, t);
  ASSERT_EQ(calls.size(), 1u);  // one forward pass of 2B
  EXPECT_TRUE(torch::equal(calls[0], torch::tensor({3, 7, 0, -1, -1, -1}, torch::kLong)));
  const auto expected =
      ((1 + w) * labels.to(torch::kFloat) + w).view({3, 1, 1, 1}).expand({3, 1, 2, 2});
  EXPECT_TRUE(torch::allclose(eps, expected));

  calls.clear();
  classifier_free_guidance(fake, labels, 0.0)(x, t);  // w = 0: conditional only, B images
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(torch::equal(calls[0], labels));
}

TEST(Guidance, OnlyWithinItsInterval) {
  std::vector<int64_t> sizes;  // images of each forward pass
  // A fake model whose "noise" is the label: eps(y) = y, eps(null) = -1.
  const ModelFn fake = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& y) {
    sizes.push_back(y.size(0));
    return y.to(torch::kFloat).view({-1, 1, 1, 1}).expand(x.sizes()).clone();
  };
  const auto labels = torch::tensor({3, 7}, torch::kLong);
  const auto x = torch::zeros({2, 1, 2, 2});
  const double w = 1.5;
  const auto denoiser = classifier_free_guidance(fake, labels, w, GuidanceInterval{2, 5});
  const auto at = [&](std::vector<int64_t> t) {
    sizes.clear();
    return denoiser(x, torch::tensor(t, torch::kLong)).select(1, 0).select(1, 0).select(1, 0);
  };
  const auto guided = torch::tensor({2.5 * 3 + 1.5, 2.5 * 7 + 1.5});  // (1 + w) y + w
  const auto plain = torch::tensor({3.0, 7.0});                       // y
  for (const int64_t t : {2, 3, 5}) {  // inside, both ends included: one pass of 2B
    EXPECT_TRUE(torch::allclose(at({t, t}), guided)) << t;
    EXPECT_EQ(sizes, (std::vector<int64_t>{4})) << t;
  }
  for (const int64_t t : {0, 1, 6, 9}) {  // outside: the conditional model alone, one pass of B
    EXPECT_TRUE(torch::allclose(at({t, t}), plain)) << t;
    EXPECT_EQ(sizes, (std::vector<int64_t>{2})) << t;
  }
  EXPECT_TRUE(torch::allclose(at({1, 4}), torch::tensor({3.0, 2.5 * 7 + 1.5})));  // per image

  EXPECT_TRUE(GuidanceInterval::of({}).every_step());
  EXPECT_TRUE(GuidanceInterval::of({}).bounds().empty());
  const GuidanceInterval i = GuidanceInterval::of({2, 5});
  EXPECT_EQ(i.t_min, 2);
  EXPECT_EQ(i.t_max, 5);
  EXPECT_EQ(i.bounds(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(GuidanceInterval::of({4, 4}).contains(4));
  EXPECT_ERROR(GuidanceInterval::of({3}), "w_interval 3: expected two timesteps t_min,t_max");
  EXPECT_ERROR(GuidanceInterval::of({5, 2}), "w_interval 5,2: expected two timesteps");
  EXPECT_ERROR(GuidanceInterval::of({1, 2, 3}), "w_interval 1,2,3");
  EXPECT_ERROR(GuidanceInterval::of({-1, 4}), "with 0 <= t_min <= t_max");
}

// ---------------------------------------------------------------------------------------------
// Seeding: generate() and the batch-by-batch path.

GenerateOptions fast_options(uint64_t seed, int64_t batch_size = 256) {
  GenerateOptions o;
  o.sampler.name = SamplerName::ddpm;
  o.sampler.steps = 3;
  o.seed = seed;
  o.batch_size = batch_size;
  return o;
}

TEST(Generate, SameSeedSameImagesDifferentSeedDifferent) {
  const TinyModel m = tiny_model();
  const auto labels = repeat_labels({1, 4, 7}, 2);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({1, 1, 4, 4, 7, 7}, torch::kLong)));
  const auto a = generate(m.model, m.diffusion, labels, fast_options(3));
  const auto b = generate(m.model, m.diffusion, labels, fast_options(3));
  const auto c = generate(m.model, m.diffusion, labels, fast_options(4));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{6, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, c));
  EXPECT_LE(a.max().item<float>(), 1.0f);
  EXPECT_GE(a.min().item<float>(), -1.0f);
}

TEST(Generate, BatchesMatchGenerate) {
  const TinyModel m = tiny_model();
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong);
  GenerateOptions o = fast_options(9, /*batch_size=*/3);
  o.guidance = 1.0;
  const auto whole = generate(m.model, m.diffusion, labels, o);
  std::vector<torch::Tensor> parts;
  std::vector<int64_t> starts;
  generate_batches(m.model, m.diffusion, 7, class_major_labels({0, 1, 2, 3, 4, 5, 6}, 1), o,
                   [&](int64_t start, const torch::Tensor& x) {
                     starts.push_back(start);
                     parts.push_back(x);
                   });
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 3, 6}));
  EXPECT_TRUE(torch::equal(torch::cat(parts), whole));
  EXPECT_TRUE(torch::equal(generate_batch(m.model, m.diffusion, labels.slice(0, 3, 6), o, 1),
                           whole.slice(0, 3, 6)));
}

TEST(Guidance, AutoguidanceAgainstAWeakerModelAloneAndWithClassifierFreeGuidance) {
  std::vector<std::pair<char, int64_t>> calls;  // which model, images
  // Fake models: the main one's "noise" is the label (the null label -1), the guide's twice that.
  const auto fake = [&](char which, double scale) -> ModelFn {
    return [&calls, which, scale](const torch::Tensor& x, const torch::Tensor&,
                                  const torch::Tensor& y) {
      calls.emplace_back(which, y.size(0));
      return (scale * y.to(torch::kFloat)).view({-1, 1, 1, 1}).expand(x.sizes()).clone();
    };
  };
  const auto labels = torch::tensor({3, 7}, torch::kLong);
  const auto x = torch::zeros({2, 1, 2, 2});
  const auto t = torch::full({2}, 4, torch::kLong);
  const auto value = [](const torch::Tensor& eps) { return eps.flatten(1).select(1, 0); };
  using Calls = std::vector<std::pair<char, int64_t>>;
  // Autoguidance alone: y + 1.5 (y - 2y) = -0.5 y; one call of B of each model.
  auto eps = classifier_free_guidance(fake('m', 1), labels, 0.0, {}, {fake('g', 2), 1.5})(x, t);
  EXPECT_TRUE(torch::allclose(value(eps), torch::tensor({-0.5 * 3, -0.5 * 7})));
  EXPECT_EQ(calls, (Calls{{'m', 2}, {'g', 2}}));
  // With classifier-free guidance: y + 1 (y - (-1)) + 1.5 (y - 2y) = 0.5 y + 1; 2B, then B.
  calls.clear();
  eps = classifier_free_guidance(fake('m', 1), labels, 1.0, {}, {fake('g', 2), 1.5})(x, t);
  EXPECT_TRUE(torch::allclose(value(eps), torch::tensor({0.5 * 3 + 1, 0.5 * 7 + 1})));
  EXPECT_EQ(calls, (Calls{{'m', 4}, {'g', 2}}));
  // Outside the interval: the model alone.
  calls.clear();
  classifier_free_guidance(fake('m', 1), labels, 1.0, GuidanceInterval{5, 9}, {fake('g', 2), 1.5})(
      x, t);
  EXPECT_EQ(calls, (Calls{{'m', 2}}));
  EXPECT_ERROR(classifier_free_guidance(fake('m', 1), labels, 0.0, {}, {nullptr, 1.0}),
               "autoguidance weight 1 without a guide model");
  EXPECT_THROW(
      classifier_free_guidance(fake('m', 1), labels, 0.0, {}, {fake('g', 2), std::nan("")}), Error);
}

TEST(Generate, AModelAutoguidedByItselfSamplesAsUnguidedAndGuidesMustMatch) {
  const TinyModel m = tiny_model(), other = tiny_model(/*init_seed=*/3);
  GenerateOptions o = fast_options(5);
  o.guidance = 0;
  o.w_guide = 2.0;
  GenerateRequest r = request_of(o);
  r.classes = {1, 4, 7};
  r.per_class = 1;
  TrainedModel self = trained_of(m);
  attach_guide(self, trained_of(m, "tiny-guide"));
  const Pipeline autoguided(self, execution_of(o));
  // eps + w_guide (eps - eps): the model's own unguided images, up to float rounding.
  GenerateRequest unguided = r;
  unguided.w_guide = 0;
  const auto plain = pipeline_of(m, o).generate(unguided).images;
  EXPECT_TRUE(torch::allclose(autoguided.generate(r).images, plain, 0, 1e-4));
  // A different guide changes the images; without a guide w_guide is refused.
  TrainedModel guided = trained_of(m);
  attach_guide(guided, trained_of(other, "other"));
  EXPECT_FALSE(
      torch::allclose(Pipeline(guided, execution_of(o)).generate(r).images, plain, 0, 1e-3));
  EXPECT_ERROR(pipeline_of(m, o).resolve(r),
               "w_guide 2: autoguidance needs a guide model (--guide); none is loaded");
  // A guide of other classes, another schedule, or a student is refused naming what differs.
  RunConfig c = tiny_config();
  c.model.num_classes = 5;
  const TrainedModel five = trained_with(c, "five");
  TrainedModel model = trained_of(m);
  EXPECT_ERROR(attach_guide(model, five),
               "guide five: makes 1x28x28 images of 5 classes, the "
               "model 1x28x28 of 10");
  c = tiny_config();
  c.diffusion.timesteps = 20;
  const TrainedModel longer = trained_with(c, "longer");
  EXPECT_ERROR(attach_guide(model, longer),
               "guide longer: its noise schedule (20 steps) is not the "
               "model's (10 steps)");
  TrainedModel student = trained_of(m, "student");
  student.student_steps = 2;
  EXPECT_ERROR(attach_guide(model, student), "guide student: is a distilled student");
  EXPECT_ERROR(attach_guide(student, trained_of(m)),
               "student: a distilled student takes w as an "
               "input and cannot be autoguided");
  EXPECT_FALSE(model.guide);  // nothing attached by a refusal
}

TEST(Generate, AGuidanceIntervalOfEveryStepChangesNothingAndOneOfNoStepIsW0) {
  const TinyModel m = tiny_model();
  const auto labels = torch::tensor({1, 4, 7}, torch::kLong);
  GenerateOptions o = fast_options(5);
  o.sampler.name = SamplerName::ddim;
  o.sampler.steps = 2;
  o.sampler.spacing = Spacing::trailing;  // t = 9, 4 for T = 10
  o.guidance = 2.0;
  const auto guided = generate(m.model, m.diffusion, labels, o);
  GenerateOptions unguided = o;
  unguided.guidance = 0;
  const auto plain = generate(m.model, m.diffusion, labels, unguided);
  ASSERT_FALSE(torch::allclose(guided, plain));
  o.guidance_interval = {0, 9};
  EXPECT_TRUE(torch::equal(generate(m.model, m.diffusion, labels, o), guided));
  o.guidance_interval = {5, 8};  // between the two steps
  EXPECT_TRUE(torch::equal(generate(m.model, m.diffusion, labels, o), plain));
  o.guidance_interval = {9, 9};  // the first step only
  const auto first_only = generate(m.model, m.diffusion, labels, o);
  EXPECT_FALSE(torch::allclose(first_only, guided));
  EXPECT_FALSE(torch::allclose(first_only, plain));
  // The request field: checked against the model's timesteps, dropped where nothing is guided.
  const Pipeline p = pipeline_of(m, o);
  GenerateRequest r = request_of(o);
  EXPECT_EQ(r.w_interval, (std::vector<int64_t>{9, 9}));
  EXPECT_EQ(p.resolve(r).w_interval, (std::vector<int64_t>{9, 9}));
  r.w_interval = {2, 10};
  EXPECT_ERROR(p.resolve(r), "w_interval 2,10: t_max is past this model's last timestep (9)");
  r.w_interval = {7};
  EXPECT_ERROR(p.resolve(r), "w_interval 7: expected two timesteps");
  r.w_interval = {2, 6};
  r.w = 0;
  EXPECT_TRUE(p.resolve(r).w_interval.empty());
  GenerateRequest a = request_of(o), b = a;
  b.w_interval = {0, 9};
  EXPECT_FALSE(Pipeline::can_share_batch(p.resolve(a), p.resolve(b)));
}

TEST(Generate, ForwardBatchChangesTheSpeedNotTheImages) {
  const TinyModel m = tiny_model();
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong);
  GenerateOptions o = fast_options(9);
  o.guidance = 1.0;  // 14 images per network call when whole
  o.forward_batch = 14;
  const auto whole = generate(m.model, m.diffusion, labels, o);
  for (int64_t forward_batch : {1, 4, 0}) {
    o.forward_batch = forward_batch;
    const auto chunked = generate(m.model, m.diffusion, labels, o);
    // Float rounding differs with the call size and grows over the steps; 1e-3 is an eighth of
    // one grey level (2 / 255) in the [-1, 1] range.
    EXPECT_TRUE(torch::allclose(chunked, whole, /*rtol=*/0, /*atol=*/1e-3))
        << "forward_batch " << forward_batch << ": max difference "
        << (chunked - whole).abs().max().item<float>();
  }
  EXPECT_EQ(GenerateOptions{}.resolved_forward_batch(torch::kCPU), kCpuForwardBatch);
  EXPECT_EQ(GenerateOptions{}.resolved_forward_batch(torch::Device("cuda:0")), 0);
  o.forward_batch = 5;
  EXPECT_EQ(o.resolved_forward_batch(torch::Device("cuda:0")), 5);
  o.forward_batch = -1;
  EXPECT_ERROR(generate(m.model, m.diffusion, labels, o), "--forward-batch -1");
}

// precision bfloat16 runs the network's calls in bfloat16: the same images up to its rounding
// (a few grey levels at most on this tiny model, whose images are noise-like), not the same bits.
TEST(Generate, BFloat16PrecisionChangesTheImagesOnlyByRounding) {
  if (!bfloat16_convolutions_run(torch::kCPU)) GTEST_SKIP() << "no bfloat16 convolutions here";
  const TinyModel m = tiny_model();
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong);
  GenerateOptions o = fast_options(9);
  o.guidance = 1.0;
  const auto exact = generate(m.model, m.diffusion, labels, o);
  o.precision = Precision::bfloat16;
  const auto rounded = generate(m.model, m.diffusion, labels, o);
  EXPECT_EQ(rounded.scalar_type(), torch::kFloat);
  const auto difference = (rounded - exact).abs();
  EXPECT_GT(difference.max().item<float>(), 0);
  EXPECT_LT(difference.mean().item<float>(), 0.02) << difference.max().item<float>();
  EXPECT_EQ(execution_of(o).precision, Precision::bfloat16);
  ExecutionOptions e;
  EXPECT_EQ(generate_options(GenerateRequest{}, e).precision, Precision::float32);
  e.precision = Precision::bfloat16;
  EXPECT_EQ(generate_options(GenerateRequest{}, e).precision, Precision::bfloat16);
}

TEST(Generate, TrajectoryEndsWithWhatSampleMakes) {
  const TinyModel m = tiny_model();
  const auto labels = torch::tensor({2, 5, 9}, torch::kLong);
  GenerateOptions o = fast_options(21);
  o.sampler.name = SamplerName::ddim;
  o.sampler.steps = 4;
  o.guidance = 2.0;
  const Trajectory tr = record_trajectory(pipeline_of(m, o), one_each({2, 5, 9}, o));
  EXPECT_EQ(tr.t, sampling_timesteps(10, 4));
  ASSERT_EQ(tr.x_t.sizes(), (std::vector<int64_t>{5, 3, 1, 28, 28}));
  const auto sampled = from_model_range(generate(m.model, m.diffusion, labels, o));
  EXPECT_TRUE(torch::equal(tr.x_t[4], sampled));
  EXPECT_TRUE(torch::equal(tr.x0[4], sampled));
  // Step 0 sees x_T itself: the seeded noise of batch 0.
  auto gen = make_generator(batch_seed(21, 0));
  EXPECT_TRUE(
      torch::equal(tr.x_t[0], from_model_range(randn_on({3, 1, 28, 28}, gen, torch::kCPU))));

  EXPECT_EQ(trajectory_frames(4, 10), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(trajectory_frames(100, 3), (std::vector<int64_t>{0, 50, 100}));
  const auto ten = trajectory_frames(100, 10);
  ASSERT_EQ(ten.size(), 10u);
  EXPECT_EQ(ten.front(), 0);
  EXPECT_EQ(ten.back(), 100);
  EXPECT_THROW(trajectory_frames(10, 1), Error);
}

// ---------------------------------------------------------------------------------------------
// IDX export: exact MNIST layout, streaming equals one shot, nothing half-written.

torch::Tensor random_pixels(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = make_generator(seed);
  return torch::randint(0, 256, shape, gen, torch::kLong).to(torch::kUInt8);
}

std::vector<std::string> directory_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(IdxExport, StreamingEqualsOneShotWrite) {
  TempDir dir;
  const auto images = random_pixels({10, 28, 28}, 1);
  write_idx(dir.path() / "oneshot", images);
  for (const char* name : {"streamed", "streamed.gz"}) {
    IdxStreamWriter w(dir.path() / name, {10, 28, 28});
    w.append(images.slice(0, 0, 4));
    w.append(images.slice(0, 4, 8));
    EXPECT_FALSE(fs::exists(dir.path() / name));  // not before commit
    w.append(images.slice(0, 8, 10));
    w.commit();
    EXPECT_TRUE(torch::equal(read_idx(dir.path() / name), images));
  }
  EXPECT_EQ(read_bytes(dir.path() / "streamed"), read_bytes(dir.path() / "oneshot"));
  const std::string gz = read_bytes(dir.path() / "streamed.gz");
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(directory_listing(dir.path()),
            (std::vector<std::string>{"oneshot", "streamed", "streamed.gz"}));  // no temp files
}

TEST(IdxExport, NothingHalfWrittenOnError) {
  TempDir dir;
  const auto images = random_pixels({5, 28, 28}, 2);
  {
    IdxStreamWriter w(dir.path() / "out", {5, 28, 28});
    w.append(images.slice(0, 0, 3));
    EXPECT_THROW(w.append(images), Error);                         // past the header's count
    EXPECT_THROW(w.append(random_pixels({1, 27, 28}, 3)), Error);  // wrong item shape
    EXPECT_THROW(w.commit(), Error);                               // 3 of 5 items
  }  // destroyed without a commit, as after an interrupt
  EXPECT_TRUE(directory_listing(dir.path()).empty());
  // An earlier complete file stays untouched.
  write_idx(dir.path() / "out", images);
  const std::string before = read_bytes(dir.path() / "out");
  { IdxStreamWriter w(dir.path() / "out", {5, 28, 28}); }
  EXPECT_EQ(read_bytes(dir.path() / "out"), before);
  EXPECT_EQ(directory_listing(dir.path()), (std::vector<std::string>{"out"}));
}

TEST(IdxExport, PairHasMnistHeadersAndLabels) {
  TempDir dir;
  const auto labels = repeat_labels({0, 3, 9}, 2);
  auto images = torch::rand({6, 1, 28, 28}) * 2 - 1;
  IdxExport out((dir.path() / "sub" / "train").string(), 6, /*labelled=*/true, {1, 28, 28},
                /*overwrite=*/false);
  out.append(images.slice(0, 0, 4), labels.slice(0, 0, 4));
  out.append(images.slice(0, 4, 6), labels.slice(0, 4, 6));
  out.commit();
  const auto paths = idx_export_paths((dir.path() / "sub" / "train").string(), 1);
  EXPECT_EQ(paths.images, dir.path() / "sub" / "train-images-idx3-ubyte");
  EXPECT_EQ(paths.labels, dir.path() / "sub" / "train-labels-idx1-ubyte");
  const std::string image_bytes = read_bytes(paths.images);
  const std::string label_bytes = read_bytes(paths.labels);
  ASSERT_EQ(image_bytes.size(), 16u + 6 * 784);
  ASSERT_EQ(label_bytes.size(), 8u + 6);
  EXPECT_EQ(image_bytes.substr(0, 16),
            std::string("\x00\x00\x08\x03\x00\x00\x00\x06\x00\x00\x00\x1c\x00\x00\x00\x1c", 16));
  EXPECT_EQ(label_bytes.substr(0, 8), std::string("\x00\x00\x08\x01\x00\x00\x00\x06", 8));
  EXPECT_EQ(label_bytes.substr(8), std::string("\x00\x00\x03\x03\x09\x09", 6));
  EXPECT_TRUE(torch::equal(read_idx(paths.images), from_model_range(images).squeeze(1)));

  const auto gz = idx_export_paths("out/x.gz", 3);
  EXPECT_EQ(gz.images, fs::path("out/x-images-idx4-ubyte.gz"));
  EXPECT_EQ(gz.labels, fs::path("out/x-labels-idx1-ubyte.gz"));
  EXPECT_THROW(idx_export_paths(dir.path().string(), 1), Error);  // a directory
  EXPECT_THROW(idx_export_paths("", 1), Error);
}

// ---------------------------------------------------------------------------------------------
// Pictures.

TEST(Pictures, NoiseProgressionFollowsEquation4) {
  const NoiseSchedule s = NoiseSchedule::from_config(DiffusionConfig{});  // cosine, T = 100
  EXPECT_EQ(noise_timestep(100, 0.6), 59);
  EXPECT_EQ(noise_timestep(100, 1.0), 99);
  torch::manual_seed(0);
  const auto x0 = torch::rand({2, 1, 28, 28}) * 2 - 1;
  const auto p = noise_progression(s, x0, {0, 0.5, 1}, 4);
  ASSERT_EQ(p.frames.sizes(), (std::vector<int64_t>{3, 2, 1, 28, 28}));
  EXPECT_EQ(p.t, (std::vector<int64_t>{-1, 50, 99}));
  EXPECT_TRUE(torch::equal(p.frames[0], x0));
  auto gen = make_generator(4);
  const auto eps = randn_on({2, 1, 28, 28}, gen, torch::kCPU);
  const double a = s.alphas_cumprod[50].item<double>();
  EXPECT_DOUBLE_EQ(p.abar[1], a);
  EXPECT_TRUE(torch::allclose(p.frames[1], std::sqrt(a) * x0 + std::sqrt(1 - a) * eps, 0, 1e-5));
  EXPECT_THROW(noise_progression(s, x0, {1.5}, 0), Error);
  const Image strip = noise_strip(p, {"3", "5"}, 2, "title");
  EXPECT_GT(strip.width, 3 * 56);
  EXPECT_GT(strip.height, 2 * 56);
}

TEST(Pictures, LabelledGridGeometryAndPngDecodes) {
  TempDir dir;
  auto images = torch::full({6, 1, 28, 28}, 1.0);  // white digits
  images[0].fill_(-1.0);                           // one black tile
  const Image grid = labelled_grid(images, 3, {{"0", "1"}, {}, ""}, 2);
  // Two rows of 3 tiles 56 px wide, 2 px padding, plus the label column at the left.
  const int grid_w = 3 * 58 + 2;
  EXPECT_EQ(grid.height, 2 * 58 + 2);
  EXPECT_GT(grid.width, grid_w);
  const int left = grid.width - grid_w;
  EXPECT_EQ(grid.at(left + 2, 2), 0);         // top-left of the black tile
  EXPECT_EQ(grid.at(left + 2 + 58, 2), 255);  // the next (white) tile
  EXPECT_EQ(grid.at(left, 0), kBackground);   // padding
  write_png(dir.path() / "g.png", grid);
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load((dir.path() / "g.png").c_str(), &w, &h, &n, 1);
  ASSERT_NE(px, nullptr);
  EXPECT_EQ(w, grid.width);
  EXPECT_EQ(h, grid.height);
  EXPECT_EQ(std::vector<uint8_t>(px, px + static_cast<size_t>(w) * h), grid.pixels);
  stbi_image_free(px);

  const Image titled = labelled_grid(images, 3, {{"0", "1"}, {"a", "b", "c"}, "t"}, 2);
  EXPECT_GT(titled.height, grid.height);
  EXPECT_THROW(labelled_grid(images, 3, {{}, {"a"}, ""}, 2), Error);  // one caption, 3 columns
}

TEST(Pictures, TrajectoryGridAndGifDecode) {
  TempDir dir;
  const TinyModel m = tiny_model();
  GenerateOptions o = fast_options(1);
  o.sampler.name = SamplerName::dpmpp_2m;
  o.sampler.steps = 3;
  const Trajectory tr = record_trajectory(pipeline_of(m, o), one_each({4, 2}, o));
  const Image grid = trajectory_grid(tr, trajectory_frames(3, 10), {"4", "2"}, 2, "title");
  EXPECT_GT(grid.width, 4 * 58);
  EXPECT_GT(grid.height, 4 * 58);  // x_t rows and x_0 rows
  const auto frames = trajectory_animation(tr, {"4", "2"}, 2);
  ASSERT_EQ(frames.size(), 4u);  // 3 steps + the result
  for (const auto& f : frames) {
    EXPECT_EQ(f.width, frames[0].width);
    EXPECT_EQ(f.height, frames[0].height);
  }
  write_gif(dir.path() / "t.gif", frames, 10);
  // giflib directly: frame count and canvas.
  int error = 0;
  GifFileType* gif = DGifOpenFileName((dir.path() / "t.gif").c_str(), &error);
  ASSERT_NE(gif, nullptr);
  ASSERT_EQ(DGifSlurp(gif), GIF_OK);
  EXPECT_EQ(gif->ImageCount, 4);
  EXPECT_EQ(gif->SWidth, frames[0].width);
  EXPECT_EQ(gif->SHeight, frames[0].height);
  DGifCloseFile(gif, &error);
  const auto back = read_gif(dir.path() / "t.gif");
  ASSERT_EQ(back.size(), 4u);
  EXPECT_EQ(back[3].pixels, frames[3].pixels);  // grey palette: exact
}

TEST(Pictures, SweepGridPutsBlocksSideBySide) {
  std::vector<torch::Tensor> images = {torch::zeros({4, 1, 28, 28}), torch::ones({4, 1, 28, 28})};
  const Image one = labelled_grid(images[0], 2, {{}, {}, "w=0"}, 1);
  const Image sweep = sweep_grid(images, {"w=0", "w=1"}, 2, {"0", "1"}, 1, "");
  EXPECT_GT(sweep.width, 2 * one.width);
  EXPECT_EQ(sweep.height, one.height);
  EXPECT_THROW(sweep_grid(images, {"w=0"}, 2, {}, 1, ""), Error);
}

TEST(Pictures, TrainingLogReadAndPlotted) {
  TempDir dir;
  const fs::path log = dir.path() / "log.jsonl";
  EXPECT_THROW(read_training_log(log), Error);  // missing
  write_file_atomic(log, std::string(""));
  EXPECT_THROW(read_training_log(log), Error);  // empty
  std::string lines;
  for (int e = 1; e <= 3; ++e) {
    EpochStats s;
    s.epoch = e;
    s.step = 10 * e;
    s.train_loss = 0.5 / e;
    s.val_loss = 0.4 / e;
    lines += nlohmann::json(s).dump() + "\n";
  }
  write_file_atomic(log, lines);
  const auto history = read_training_log(log);
  ASSERT_EQ(history.size(), 3u);
  EXPECT_DOUBLE_EQ(history[2].val_loss, 0.4 / 3);
  const Image plot = loss_plot(history, "run");
  EXPECT_EQ(plot.width, 800);
  EXPECT_EQ(plot.height, 500);
  EXPECT_EQ(plot.channels, 3);
  write_file_atomic(log, lines + "{\"epoch\": 4, \"step\": \n");
  try {
    read_training_log(log);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log.jsonl:4"), std::string::npos) << e.what();
  }
}

TEST(Request, ClassesAndOutputs) {
  const Pipeline p = pipeline_of(tiny_model(), fast_options(0));
  auto classes = [&](std::vector<int64_t> asked) {
    GenerateRequest r;
    r.classes = std::move(asked);
    return p.resolve(r).classes;
  };
  EXPECT_EQ(classes({}), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(classes({7, 1}), (std::vector<int64_t>{7, 1}));
  EXPECT_THROW(classes({10}), Error);
  EXPECT_THROW(classes({-1}), Error);
  EXPECT_EQ(format_weight(0), "0");
  EXPECT_EQ(format_weight(0.5), "0.5");
  TempDir dir;
  EXPECT_NO_THROW(check_output_path(dir.path() / "new" / "x.png", "--out"));
  EXPECT_THROW(check_output_path(dir.path(), "--out"), Error);
  EXPECT_THROW(check_output_path("/proc/numeral/x.png", "--out"), Error);
}

// ---------------------------------------------------------------------------------------------
// The commands, through the CLI binary.

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    checkpoint_ = save_tiny_checkpoint(dir_->path()).string();
  }
  static void TearDownTestSuite() { dir_.reset(); }
  const fs::path& dir() const { return dir_->path(); }
  CliResult run(const std::string& args) const { return run_cli(args, dir()); }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::string checkpoint_;
};

TEST_F(Cli, TinyCheckpointLoads) {
  const TrainedModel m = load_trained_model(checkpoint_, torch::kCPU);
  EXPECT_EQ(m.diffusion->T(), 10);
  EXPECT_EQ(m.config.model.channels, (std::vector<int64_t>{8, 16}));
}

TEST_F(Cli, SampleWritesGridPngsAndIdx) {
  const fs::path out = dir() / "sample";
  const std::string args = fmt::format(
      "sample --checkpoint '{}' --digit 1,4,7 --per-digit 2 --sampler ddim --steps 2 "
      "--seed 5 --batch-size 4 --threads 1 --grid '{}' --png-dir '{}' --idx '{}'",
      checkpoint_, (out / "grid.png").string(), (out / "pngs").string(), (out / "synth").string());
  const CliResult r = run(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("6 images in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("images/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ddim"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("w=0.25,"), std::string::npos) << r.out;  // kDefaultGuidance without --w
  EXPECT_EQ(kDefaultGuidance, 0.25);
  const auto labels = read_idx(out / "synth-labels-idx1-ubyte");
  EXPECT_TRUE(torch::equal(labels, torch::tensor({1, 1, 4, 4, 7, 7}).to(torch::kUInt8)));
  const auto images = read_idx(out / "synth-images-idx3-ubyte");
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{6, 28, 28}));
  // The same images as the library makes with the same seed, options, checkpoint and thread count
  // (the tiny model's images move by a grey level between thread counts).
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  const TrainedModel m = load_trained_model(checkpoint_, torch::kCPU);
  GenerateOptions o;
  o.sampler.name = SamplerName::ddim;
  o.sampler.steps = 2;
  o.seed = 5;
  o.batch_size = 4;
  const auto expected = generate(m.model, m.diffusion, repeat_labels({1, 4, 7}, 2), o);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(images, from_model_range(expected).squeeze(1)));
  // Single PNGs, raw 28x28, named digit-<d>-<i>.png.
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load((out / "pngs" / "digit-7-1.png").c_str(), &w, &h, &n, 1);
  ASSERT_NE(px, nullptr);
  EXPECT_EQ(w, 28);
  EXPECT_EQ(h, 28);
  EXPECT_EQ(
      std::vector<uint8_t>(px, px + 784),
      std::vector<uint8_t>(images[5].data_ptr<uint8_t>(), images[5].data_ptr<uint8_t>() + 784));
  stbi_image_free(px);
  px = stbi_load((out / "grid.png").c_str(), &w, &h, &n, 0);
  ASSERT_NE(px, nullptr);
  EXPECT_GT(w, 2 * 84);
  EXPECT_GT(h, 3 * 84);
  stbi_image_free(px);

  // Same seed again: refused while the earlier export is there, byte-identical with --overwrite.
  const std::string first = read_bytes(out / "synth-images-idx3-ubyte");
  const CliResult again = run(args);
  EXPECT_EQ(again.rc, 1);
  EXPECT_EQ(again.err_lines(), 1) << again.err;
  EXPECT_NE(again.err.find("--overwrite"), std::string::npos) << again.err;
  ASSERT_EQ(run(args + " --overwrite").rc, 0);
  EXPECT_EQ(read_bytes(out / "synth-images-idx3-ubyte"), first);
}

TEST_F(Cli, SampleGzipIdxAndUnconditional) {
  const fs::path out = dir() / "uncond";
  const CliResult r = run(fmt::format(
      "sample --checkpoint '{}' --unconditional --per-digit 1 --sampler dpm++2m --steps 2 --idx "
      "'{}'",
      checkpoint_, (out / "u.gz").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto images = read_idx(out / "u-images-idx3-ubyte.gz");
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{10, 28, 28}));
  EXPECT_FALSE(fs::exists(out / "u-labels-idx1-ubyte.gz"));  // no labels without classes
  // Unconditional is the null-label model alone (w = 0), whatever the default guidance.
  const TrainedModel m = load_trained_model(checkpoint_, torch::kCPU);
  GenerateOptions o;
  o.sampler.name = SamplerName::dpmpp_2m;
  o.sampler.steps = 2;
  o.guidance = 0;
  const auto expected =
      generate(m.model, m.diffusion, torch::full({10}, kNullLabel, torch::kLong), o);
  EXPECT_TRUE(torch::equal(images, from_model_range(expected).squeeze(1)));
}

// A file that names its own guidance weight (`model export --default-w`) samples with it when --w
// is left out, and --w still overrides it; `sample` without --checkpoint runs the shipped student.
TEST_F(Cli, TheModelsOwnGuidanceWeightIsTheDefault) {
  const fs::path own = dir() / "own-w.safetensors", out = dir() / "own-w";
  CliResult r = run(fmt::format("model export --checkpoint '{}' --out '{}' --default-w 0.6",
                                checkpoint_, own.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("default w = 0.6,"), std::string::npos) << r.out;
  r = run(fmt::format("model summary --checkpoint '{}'", own.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("default guidance weight: w = 0.6\n"), std::string::npos) << r.out;
  const std::string request = "--digit 3,5 --per-digit 2 --sampler ddim --steps 2 --threads 1";
  r = run(fmt::format("sample --checkpoint '{}' {} --idx '{}'", own.string(), request,
                      (out / "own").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("w=0.6,"), std::string::npos) << r.out;
  r = run(fmt::format("sample --checkpoint '{}' {} --w 0.6 --idx '{}'", checkpoint_, request,
                      (out / "explicit").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(read_bytes(out / "own-images-idx3-ubyte"),
            read_bytes(out / "explicit-images-idx3-ubyte"));
  r = run(fmt::format("sample --checkpoint '{}' {} --w 0 --idx '{}'", own.string(), request,
                      (out / "zero").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("w=0,"), std::string::npos) << r.out;
  EXPECT_NE(read_bytes(out / "own-images-idx3-ubyte"), read_bytes(out / "zero-images-idx3-ubyte"));
  r = run(fmt::format("trajectory --checkpoint '{}' --digit 3 --sampler ddim --steps 2 -o '{}'",
                      own.string(), (out / "t.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("w=0.6,"), std::string::npos) << r.out;
  // --help names no number for --w: the default is the model's.
  r = run("sample --help");
  EXPECT_NE(r.out.find("default: the model's own"), std::string::npos) << r.out;

  r = run(fmt::format("model export --checkpoint '{}' --out '{}' --default-w nan", checkpoint_,
                      (dir() / "nan.safetensors").string()));
  EXPECT_EQ(r.rc, 2);  // a parse error
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--default-w: expected a finite number"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir() / "nan.safetensors"));

  // No --checkpoint: the shipped student (found beside the binary) with its own weight.
  const fs::path student = fs::path(NUMERAL_SOURCE_DIR) / "models" / "mnist-student.safetensors";
  ASSERT_TRUE(fs::exists(student));
  r = run(fmt::format("sample --digit 7 --per-digit 1 --threads 1 --grid '{}'",
                      (out / "student.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("mnist-student.safetensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ddim, 4 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format(
                "w={},", format_weight(load_trained_model(student, torch::kCPU).default_w))),
            std::string::npos)
      << r.out;
}

// `sample` and `serve` without --checkpoint need the shipped student in ./models or beside the
// binary; a binary that has neither says where it looked, in one line, and writes nothing.
TEST_F(Cli, SampleAutoguidedByAnotherCheckpoint) {
  const fs::path grid = dir() / "autoguided.png";
  const CliResult r = run("sample --checkpoint '" + checkpoint_ + "' --guide '" + checkpoint_ +
                          "' --digit 3 --per-digit 2 --sampler ddim --steps 2 --w 1 --w-guide 2 "
                          "--grid '" +
                          grid.string() + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("autoguided by " + checkpoint_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("w=1, w_guide=2"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(grid));
}

// --precision bfloat16 samples (the header says so) images within a few grey levels of float32's.
TEST_F(Cli, PrecisionBFloat16SamplesAndSaysSo) {
  if (!bfloat16_convolutions_run(torch::kCPU)) GTEST_SKIP() << "no bfloat16 convolutions here";
  const std::string sample = fmt::format(
      "sample --checkpoint '{}' --digit 3,5 --per-digit 2 --sampler ddim --steps 2 --threads 1",
      checkpoint_);
  const fs::path out = dir() / "precision";
  CliResult r = run(sample + fmt::format(" --idx '{}'", (out / "f32").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("network in"), std::string::npos) << r.out;
  r = run(sample + fmt::format(" --precision bfloat16 --idx '{}'", (out / "bf16").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("network in bfloat16"), std::string::npos) << r.out;
  r =
      run(fmt::format("trajectory --checkpoint '{}' --digit 3 --steps 2 --threads 1 --precision "
                      "bfloat16 --out '{}'",
                      checkpoint_, (out / "trajectory.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("network in bfloat16"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out / "trajectory.png"));
  const auto a = read_idx(out / "f32-images-idx3-ubyte").to(torch::kInt),
             b = read_idx(out / "bf16-images-idx3-ubyte").to(torch::kInt);
  // This barely trained eps-predicting model's first step divides its noise estimate by the
  // signal's tiny scale, so single pixels can move far (clamped); on average they move little.
  const double mean = (a - b).abs().to(torch::kDouble).mean().item<double>();
  EXPECT_GT(mean, 0) << "bfloat16 changed nothing";
  EXPECT_LT(mean, 12) << "grey levels on average";
}

// Where LibTorch cannot run bfloat16 convolutions (here: oneDNN held to AVX2 while LibTorch takes
// the CPU for an AVX-512 one), --precision bfloat16 is refused in one line and nothing is written;
// a CPU whose fallback runs them samples instead.
TEST_F(Cli, PrecisionBFloat16WhereItCannotRunIsOneLine) {
  const fs::path out = dir() / "no-bf16" / "x";
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
  ::setenv("DNNL_MAX_CPU_ISA", "AVX2", 1);
  const CliResult r = run(fmt::format(
      "sample --checkpoint '{}' --digit 3 --per-digit 2 --sampler ddim --steps 2 --threads 1 "
      "--precision bfloat16 --idx '{}'",
      checkpoint_, out.string()));
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  ::unsetenv("DNNL_MAX_CPU_ISA");
  if (r.rc == 0) return;  // this CPU's fallback convolutions took bfloat16
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--precision bfloat16: LibTorch cannot run bfloat16 convolutions on this "
                       "cpu"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out.parent_path() / "x-images-idx3-ubyte"));
}

// `model export --guide` bundles the guide into the copy, which then samples autoguided at its own
// w_guide with no --guide; --w-guide 0 turns it off, and the summary names both.
TEST_F(Cli, AnExportedFileCarriesItsGuideAndItsWeight) {
  const fs::path bundle = dir() / "bundle.safetensors";
  CliResult r =
      run(fmt::format("model export --checkpoint '{}' --out '{}' --guide '{}' "
                      "--default-w-guide 2",
                      checkpoint_, bundle.string(), checkpoint_));
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string against = "autoguidance: against " + bundle.string() + "#guide";
  EXPECT_NE(r.out.find(against), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("default w_guide = 2"), std::string::npos) << r.out;
  r = run(fmt::format("model summary --checkpoint '{}'", bundle.string()));
  EXPECT_NE(r.out.find(against), std::string::npos) << r.out;
  // The tiny model guided by itself: eps + 2 (eps - eps) samples as unguided.
  const fs::path out = dir() / "bundled";
  const std::string sample = fmt::format(
      "sample --checkpoint '{}' --digit 3,5 --per-digit 2 --sampler ddim --steps 2 --threads 1",
      bundle.string());
  r = run(sample + fmt::format(" --idx '{}'", (out / "auto").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("autoguided by " + bundle.string() + "#guide"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("w=0.25, w_guide=2"), std::string::npos) << r.out;
  r = run(sample + fmt::format(" --w-guide 0 --idx '{}'", (out / "plain").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("autoguided"), std::string::npos) << r.out;
  const auto a = read_idx(out / "auto-images-idx3-ubyte").to(torch::kInt),
             b = read_idx(out / "plain-images-idx3-ubyte").to(torch::kInt);
  EXPECT_LE((a - b).abs().max().item<int>(), 1);  // float rounding: a grey level at most
  // The sweep says the same of its images, and of a guidance interval.
  r =
      run(fmt::format("sweep --checkpoint '{}' --digit 3 --per-digit 1 --steps 2 --w 0,1 "
                      "--w-interval 0,1 --threads 1 --out '{}'",
                      bundle.string(), (out / "sweep.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find(", guided only at t 0..1, autoguided by " + bundle.string() +
                       "#guide at w_guide 2, seed"),
            std::string::npos)
      << r.out;
  // A default w_guide needs a guide; nothing is written.
  r = run(fmt::format("model export --checkpoint '{}' --out '{}' --default-w-guide 1", checkpoint_,
                      (dir() / "no-guide.safetensors").string()));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("default_w_guide 1: the copy has no guide to apply it against (--guide)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir() / "no-guide.safetensors"));
}

TEST_F(Cli, WithoutACheckpointOrAShippedModelTheCommandSaysWhereItLooked) {
  const TempDir alone;
  fs::create_directories(alone / "bin");
  fs::copy_file(NUMERAL_CLI_PATH, alone / "bin" / "numeral");
  for (const std::string command : {"sample --digit 1", "serve --port 0"}) {
    const std::string line = fmt::format("cd '{}' && ./bin/numeral {} >out.txt 2>err.txt",
                                         alone.path().string(), command);
    const int status = std::system(line.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << command;
    EXPECT_EQ(WEXITSTATUS(status), 1) << command;
    const std::string err = read_bytes(alone / "err.txt");
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    const std::string verb = command.substr(0, command.find(' '));
    EXPECT_NE(err.find(verb + ": no --checkpoint and no shipped model at "
                              "models/mnist-student.safetensors (looked in the working directory "
                              "and beside the binary)"),
              std::string::npos)
        << err;
  }
  EXPECT_FALSE(fs::exists(alone / "samples.png"));
}

TEST_F(Cli, TrajectorySweepNoiseAndPlotWritePictures) {
  const fs::path out = dir() / "pictures";
  CliResult r = run(fmt::format(
      "trajectory --checkpoint '{}' --digit 3,8 --sampler ddim --steps 3 --w 1 -o '{}' --gif '{}'",
      checkpoint_, (out / "t.png").string(), (out / "t.gif").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GE(read_gif(out / "t.gif").size(), 4u);
  EXPECT_GT(read_png(out / "t.png").width, 0);

  r =
      run(fmt::format("sweep --checkpoint '{}' --w 0,2 --digit 0,1 --per-digit 2 --sampler ddim "
                      "--steps 2 -o '{}'",
                      checkpoint_, (out / "s.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("w=2"), std::string::npos);
  EXPECT_GT(read_png(out / "s.png").width, 2 * 2 * 84);

  // A small dataset directory for `noise`.
  const fs::path data = dir() / "data";
  write_idx(data / "train-images-idx3-ubyte", random_pixels({20, 28, 28}, 4));
  write_idx(data / "train-labels-idx1-ubyte", torch::arange(20).remainder(10).to(torch::kUInt8));
  r = run(fmt::format("noise --data '{}' --digit 2,3 -T 50 --schedule linear -o '{}'",
                      data.string(), (out / "n.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("abar_t"), std::string::npos) << r.out;
  EXPECT_GT(read_png(out / "n.png").width, 6 * 84);
  r = run(fmt::format("noise --data '{}' --checkpoint '{}' --index 0 -o '{}'", data.string(),
                      checkpoint_, (out / "n2.png").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("T = 10"), std::string::npos) << r.out;

  const fs::path run_dir = dir() / "run";
  write_file_atomic(run_dir / "log.jsonl",
                    std::string("{\"epoch\":1,\"step\":5,\"train_loss\":0.9,\"val_loss\":0.5,"
                                "\"lr\":0.001,\"images_per_s\":10,\"elapsed_s\":3}\n"
                                "{\"epoch\":2,\"step\":10,\"train_loss\":0.4,\"val_loss\":0.3,"
                                "\"lr\":0.001,\"images_per_s\":10,\"elapsed_s\":6}\n"));
  r = run(fmt::format("plot '{}'", run_dir.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(read_png(run_dir / "loss.png").width, 800);
}

// Names in `dir` that are numeral temporaries.
std::vector<std::string> temporaries_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (is_temporary_name(name)) names.push_back(name);
  }
  return names;
}

TEST_F(Cli, OutputsNeverReplaceFifosSymlinksOrDevices) {
  const TempDir scratch;
  ASSERT_EQ(::mkfifo((scratch / "fifo").c_str(), 0644), 0);
  write_file_atomic(scratch / "target.png", "keep");
  fs::create_symlink("target.png", scratch / "link.png");
  const std::map<std::string, std::string> args = {
      {"sample", "--per-digit 1 --steps 1 --grid"},
      {"trajectory", "--digit 1 --steps 1 --out"},
      {"sweep", "--per-digit 1 --steps 1 --w 0 --out"}};
  for (const auto& [out, message] : std::vector<std::pair<std::string, std::string>>{
           {(scratch / "fifo").string(), "is a FIFO (named pipe)"},
           {(scratch / "link.png").string(), "is a symbolic link to target.png"},
           {"/dev/null", "is a character device"}}) {
    for (const auto& [command, options] : args) {
      const std::string flag = command == "sample" ? "--grid" : "--out";
      const CliResult r =
          run(fmt::format("{} --checkpoint '{}' {} '{}'", command, checkpoint_, options, out));
      EXPECT_EQ(r.rc, 1) << command << " " << out;
      EXPECT_EQ(r.err_lines(), 1) << r.err;
      EXPECT_TRUE(contains(r.err, flag + " " + out + ": " + message)) << r.err;
    }
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(scratch / "fifo")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(scratch / "link.png")));
  EXPECT_EQ(read_file(scratch / "target.png"), "keep");
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

TEST_F(Cli, AnExportNeverPairsWithAnotherExportsFiles) {
  const TempDir scratch;
  const std::string sample = "sample --checkpoint '" + checkpoint_ + "' --steps 1 --per-digit 2";
  const std::string prefix = (scratch / "syn" / "train").string();
  ASSERT_EQ(run(fmt::format("{} --idx '{}'", sample, prefix)).rc, 0);
  const std::string labels = read_bytes(scratch / "syn" / "train-labels-idx1-ubyte");
  // An unconditional export over the labelled one would have left the old labels beside it.
  for (const std::string& other : {prefix, prefix + ".gz"}) {
    const CliResult r = run(fmt::format("{} --unconditional --idx '{}'", sample, other));
    EXPECT_EQ(r.rc, 1) << other;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
    EXPECT_TRUE(contains(r.err, "--overwrite")) << r.err;
  }
  EXPECT_EQ(read_bytes(scratch / "syn" / "train-labels-idx1-ubyte"), labels);
  // --overwrite replaces the export whole: the old labels go with it.
  const CliResult r =
      run(fmt::format("{} --unconditional --idx '{}.gz' --overwrite", sample, prefix));
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(scratch / "syn")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"train-images-idx3-ubyte.gz"}));
  EXPECT_EQ(read_idx(scratch / "syn" / "train-images-idx3-ubyte.gz").size(0), 20);

  // A PNG folder is refused when it holds an earlier export, and replaced whole with --overwrite.
  const fs::path pngs = scratch / "pngs";
  ASSERT_EQ(run(fmt::format("{} --png-dir '{}'", sample, pngs.string())).rc, 0);
  EXPECT_TRUE(fs::exists(pngs / "digit-9-1.png"));
  const CliResult refused = run(fmt::format("{} --digit 3 --png-dir '{}'", sample, pngs.string()));
  EXPECT_EQ(refused.rc, 1);
  EXPECT_TRUE(contains(refused.err, "already holds files")) << refused.err;
  EXPECT_TRUE(fs::exists(pngs / "digit-9-1.png"));
  ASSERT_EQ(run(fmt::format("{} --digit 3 --png-dir '{}' --overwrite", sample, pngs.string())).rc,
            0);
  names.clear();
  for (const auto& entry : fs::directory_iterator(pngs)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"digit-3-0.png", "digit-3-1.png"}));
  EXPECT_TRUE(temporaries_in(scratch.path()).empty());
}

TEST_F(Cli, SignalsStopGenerationWithNothingWrittenAndExitCode128PlusTheSignal) {
  for (const auto& [signal, name, code] :
       {std::tuple{SIGINT, "SIGINT", 130}, std::tuple{SIGTERM, "SIGTERM", 143}}) {
    const TempDir scratch;
    CliProcess sampling(fmt::format("sample --checkpoint '{}' --per-digit 100000 --steps 2 "
                                    "--batch-size 16 --idx '{}' --png-dir '{}'",
                                    checkpoint_, (scratch / "out" / "syn").string(),
                                    (scratch / "out" / "pngs").string()),
                        scratch.path());
    ASSERT_TRUE(sampling.wait_for_output("images (")) << sampling.out();
    sampling.send(signal);
    const CliResult r = sampling.wait();
    EXPECT_EQ(r.rc, code) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, fmt::format("numeral: stopped by {}: after ", name))) << r.err;
    EXPECT_TRUE(contains(r.err, "of 1000000 images; nothing was written")) << r.err;
    EXPECT_TRUE(fs::is_empty(scratch / "out"));
  }
}

TEST_F(Cli, WhatAKilledExportLeftIsRemovedByTheNextStart) {
  const TempDir scratch;
  const fs::path out = scratch / "syn";
  CliProcess killed(fmt::format("sample --checkpoint '{}' --per-digit 100000 --steps 2 --idx '{}'",
                                checkpoint_, (out / "big").string()),
                    scratch.path());
  ASSERT_TRUE(killed.wait_for_output("images (")) << killed.out();
  killed.send(SIGKILL);
  EXPECT_EQ(killed.wait().signal, SIGKILL);
  EXPECT_EQ(temporaries_in(out).size(), 2u);  // images and labels: SIGKILL leaves them
  const CliResult next =
      run(fmt::format("sample --checkpoint '{}' --per-digit 1 --steps 1 --idx '{}'", checkpoint_,
                      (out / "small").string()));
  ASSERT_EQ(next.rc, 0) << next.err;
  EXPECT_TRUE(temporaries_in(out).empty());
  EXPECT_TRUE(fs::exists(out / "small-images-idx3-ubyte"));
}

TEST_F(Cli, RequestSizesAreCheckedBeforeAnythingIsAllocated) {
  const TempDir scratch;
  // Under a 4 GB address-space limit. Labels for 10^11 images (800 GB) used to be allocated before
  // any check; 10^9 images to IDX files (8 GB of labels) used to be allocated up front too.
  const std::string limit = "ulimit -v 4000000";
  const std::string sample = "sample --checkpoint '" + checkpoint_ + "' --steps 1 --idx ";
  CliProcess huge(sample + "'" + (scratch / "a").string() + "' --per-digit 10000000000",
                  scratch.path(), "huge", limit);
  const CliResult refused = huge.wait();
  EXPECT_EQ(refused.rc, 1) << refused.err;
  EXPECT_EQ(refused.err_lines(), 1) << refused.err;
  EXPECT_TRUE(contains(refused.err,
                       "--per-class 10000000000: at most 214,748,364 for 10 rows (2,147,483,647 "
                       "images in one request, the most an IDX file can count)"))
      << refused.err;
  // A billion images stream: labels are made a batch at a time. Stopped once it is under way.
  CliProcess streaming(sample + "'" + (scratch / "b").string() + "' --per-digit 100000000",
                       scratch.path(), "streaming", limit);
  ASSERT_TRUE(streaming.wait_for_output("1000000000 images (100000000 per class)"))
      << streaming.out();
  streaming.send(SIGINT);
  const CliResult stopped = streaming.wait();
  EXPECT_EQ(stopped.rc, 130) << stopped.err;
  EXPECT_TRUE(contains(stopped.err, "of 1000000000 images; nothing was written")) << stopped.err;
  EXPECT_FALSE(fs::exists(scratch / "a-images-idx3-ubyte"));
  EXPECT_FALSE(fs::exists(scratch / "b-images-idx3-ubyte"));
  EXPECT_TRUE(temporaries_in(scratch.path()).empty());
}

TEST_F(Cli, BadArgumentsGiveOneLineAndNonZeroExit) {
  // A classifier checkpoint is not a diffusion model.
  Checkpoint classifier;
  classifier.kind = "classifier";
  classifier.config = nlohmann::json::object();
  classifier.tensors["w"] = torch::zeros({2});
  save_checkpoint(dir() / "classifier.safetensors", classifier);
  const fs::path missing_log = dir() / "empty-run";
  fs::create_directories(missing_log);
  const fs::path corrupt_run = dir() / "corrupt-run";
  write_file_atomic(corrupt_run / "log.jsonl", std::string("{\"epoch\": 1,\n"));

  const std::string ck = "--checkpoint '" + checkpoint_ + "'";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sample " + ck + " --digit 10", "--classes 10: out of range"},
      {"sample " + ck + " --steps 0", "--steps: expected at least 1"},
      {"sample " + ck + " --steps 11", "--steps 11"},
      {"sample " + ck + " --sampler euler", "--sampler euler"},
      {"sample --checkpoint '" + (dir() / "nope").string() + "'", "no such checkpoint"},
      {"sample --checkpoint '" + (dir() / "classifier.safetensors").string() + "'",
       "classifier checkpoint"},
      {"sample " + ck + " --grid /proc/numeral/x.png", "/proc/numeral"},
      {"sample " + ck + " --idx /proc/numeral/x", "/proc/numeral"},
      {"sample " + ck + " --grid '" + dir().string() + "'", "is a directory"},
      {"sample " + ck + " --unconditional --digit 3", "--unconditional"},
      {"trajectory " + ck + " --frames 1", "--frames 1"},
      {"trajectory " + ck + " --digit 12", "--classes 12: out of range"},
      {"sweep " + ck + " --steps 0", "--steps: expected at least 1 (leave it out"},
      {"sample " + ck + " --forward-batch -1", "--forward-batch"},
      {"sample " + ck + " --batch-size 0", "--batch-size"},
      {"sample " + ck + " --precision float16", "--precision"},
      {"sample " + ck + " --w-interval 6,2", "--w-interval 6,2: expected two timesteps"},
      {"sample " + ck + " --w-interval 2,10", "--w-interval 2,10: t_max is past"},
      {"sample " + ck + " --guide '" + (dir() / "nope").string() + "'", "no such checkpoint"},
      {"sample " + ck + " --w-guide 1", "--w-guide 1: autoguidance needs a guide model"},
      {"trajectory " + ck + " --w-guide 1", "--w-guide 1: autoguidance needs a guide model"},
      {"sweep " + ck + " --guide '" + (dir() / "nope").string() + "'", "no such checkpoint"},
      {"noise --checkpoint '" + (dir() / "nope").string() + "'", "no such checkpoint"},
      {"noise " + ck + " --schedule linear", "--schedule"},
      {"noise --fractions 0,1.5", "--fractions"},
      {"plot '" + missing_log.string() + "'", "log.jsonl"},
      {"plot '" + corrupt_run.string() + "'", "log.jsonl:1"},
      {"plot '" + (dir() / "no-such-run").string() + "'", "not a directory"},
  };
  for (const auto& [args, needle] : cases) {
    const CliResult r = run(args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_EQ(r.err_lines(), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
  }
  // CLI11's own parse errors (a non-number for --w) exit non-zero and name the flag first.
  for (const std::string& args : {"sample " + ck + " --w abc", "sweep " + ck + " --w 1,x"}) {
    const CliResult r = run(args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.err.substr(0, r.err.find('\n')).find("--w"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace numeral
