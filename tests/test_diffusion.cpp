// Schedules, the forward process, the loss and the guidance formula: closed forms and statistics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "numeral/common/error.h"
#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/diffusion/learned_schedule.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/diffusion/schedule.h"
#include "test_util.h"

namespace numeral {
namespace {

DiffusionConfig config_with(const std::string& schedule, int64_t T = 100) {
  DiffusionConfig c;
  c.schedule = parse_enum<Schedule>(schedule, "schedule");
  c.timesteps = T;
  return c;
}

double abar_T(const DiffusionConfig& c) {
  return NoiseSchedule::from_config(c).alphas_cumprod[-1].item<double>();
}

TEST(Schedule, DefaultEndsInNoise) {
  // The bar: the default schedule's last step really is noise.
  EXPECT_LT(abar_T(DiffusionConfig{}), 1e-3);
  EXPECT_LT(abar_T(config_with("linear")), 1e-3);
  EXPECT_LT(abar_T(config_with("cosine", 1000)), 1e-3);
  EXPECT_LT(abar_T(config_with("linear", 20)), 1e-3);
}

TEST(Schedule, TextbookLinearLeavesTheImageAtT100) {
  // 1e-4..0.02 over 100 steps: prod(1 - beta) = 0.364 (the pitfall the issue describes).
  EXPECT_NEAR(abar_T(config_with("linear-textbook")), 0.364, 0.002);
  auto betas = make_betas(config_with("linear-textbook"));
  EXPECT_NEAR(betas[0].item<double>(), 1e-4, 1e-12);
  EXPECT_NEAR(betas[-1].item<double>(), 0.02, 1e-12);
}

TEST(Schedule, LinearIsRescaledTo1000OverT) {
  auto betas = make_betas(config_with("linear", 100));
  EXPECT_NEAR(betas[0].item<double>(), 1e-3, 1e-12);
  EXPECT_NEAR(betas[-1].item<double>(), 0.2, 1e-12);
}

TEST(Schedule, CosineMatchesClosedForm) {
  const auto s = NoiseSchedule::from_config(config_with("cosine", 100));
  auto f = [](double t) {
    const double a = (t / 100.0 + 0.008) / 1.008 * M_PI / 2;
    return std::cos(a) * std::cos(a);
  };
  for (int64_t t : {0, 10, 50, 90}) {  // unclipped steps: abar_t = f(t+1) / f(0)
    EXPECT_NEAR(s.alphas_cumprod[t].item<double>(), f(t + 1) / f(0), 1e-9) << "t=" << t;
  }
  EXPECT_LE(s.betas.max().item<double>(), 0.999);
}

class EverySchedule : public ::testing::TestWithParam<std::string> {};

TEST_P(EverySchedule, CoefficientsAreConsistent) {
  const auto s = NoiseSchedule::from_config(config_with(GetParam(), 50));
  const auto abar = s.alphas_cumprod;
  // Monotone decreasing abar in (0, 1), betas in (0, 1).
  EXPECT_TRUE((abar.slice(0, 1) < abar.slice(0, 0, -1)).all().item<bool>());
  EXPECT_GT(abar.min().item<double>(), 0);
  EXPECT_LT(abar.max().item<double>(), 1);
  EXPECT_TRUE(((s.betas > 0) & (s.betas < 1)).all().item<bool>());
  // abar_t = prod(1 - beta); abar_prev shifted with abar_{-1} = 1.
  EXPECT_TRUE(torch::allclose(abar, torch::cumprod(1 - s.betas, 0)));
  EXPECT_EQ(s.alphas_cumprod_prev[0].item<double>(), 1.0);
  EXPECT_TRUE(torch::allclose(s.alphas_cumprod_prev.slice(0, 1), abar.slice(0, 0, -1)));
  // Posterior: beta~_t <= beta_t, and the mean coefficients reproduce x_0 when x_t is noiseless
  // (coef1 sqrt(abar_t)^-1 ... ): mu~(x_0, x_t = sqrt(abar_t) x_0) = sqrt(abar_{t-1}) x_0.
  EXPECT_TRUE((s.posterior_variance <= s.betas + 1e-12).all().item<bool>());
  auto mu = s.posterior_mean_coef1 + s.posterior_mean_coef2 * abar.sqrt();
  EXPECT_TRUE(torch::allclose(mu, s.alphas_cumprod_prev.sqrt(), 1e-9, 1e-9));
  EXPECT_TRUE(torch::isfinite(s.posterior_log_variance_clipped).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Schedules, EverySchedule,
                         ::testing::Values("cosine", "linear", "linear-textbook"));

TEST(Schedule, ZeroTerminalSnr) {
  DiffusionConfig c = config_with("linear-textbook");
  c.zero_terminal_snr = true;
  c.prediction = Prediction::v;
  const auto plain = NoiseSchedule::from_config(config_with("linear-textbook"));
  const auto s = NoiseSchedule::from_config(c);
  EXPECT_EQ(s.alphas_cumprod[-1].item<double>(), 0.0);
  EXPECT_NEAR(s.sqrt_alphas_cumprod[0].item<double>(), plain.sqrt_alphas_cumprod[0].item<double>(),
              1e-12);
  // sqrt(abar) stays monotone.
  auto r = s.sqrt_alphas_cumprod;
  EXPECT_TRUE((r.slice(0, 1) < r.slice(0, 0, -1)).all().item<bool>());
}

TEST(DiffusionConfig, RejectsBadValues) {
  DiffusionConfig c;
  c.timesteps = 1;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_ERROR(parse_enum<Schedule>("quadratic", "schedule"),
               "schedule quadratic: expected cosine, linear, linear-textbook or learned");
  c = DiffusionConfig{};
  c.zero_terminal_snr = true;  // with eps prediction: x_0 unrecoverable at T
  EXPECT_THROW(c.validate(), Error);
  EXPECT_ERROR(parse_enum<Prediction>("x0", "prediction"), "prediction x0: expected eps, v or edm");
}

TEST(GaussianDiffusion, QSampleStatistics) {
  torch::manual_seed(0);
  GaussianDiffusion d(DiffusionConfig{}, torch::kCPU);
  const int64_t n = 20000, t = 30;
  auto x0 = torch::full({n, 1, 1, 1}, 0.5);
  auto ts = torch::full({n}, t, torch::kLong);
  auto xt = d.q_sample(x0, ts, torch::randn({n, 1, 1, 1}));
  const double abar = d.schedule_f64().alphas_cumprod[t].item<double>();
  EXPECT_NEAR(xt.mean().item<double>(), 0.5 * std::sqrt(abar), 0.02);
  EXPECT_NEAR(xt.var().item<double>(), 1 - abar, 0.02);
  // At T-1 x_t is (nearly) pure noise: mean ~ 0, variance ~ 1.
  auto xT = d.q_sample(x0, torch::full({n}, d.T() - 1, torch::kLong), torch::randn({n, 1, 1, 1}));
  EXPECT_NEAR(xT.mean().item<double>(), 0.0, 0.03);
  EXPECT_NEAR(xT.var().item<double>(), 1.0, 0.03);
}

TEST(GaussianDiffusion, PredictionConversionsInvert) {
  torch::manual_seed(0);
  GaussianDiffusion d(DiffusionConfig{}, torch::kCPU);
  auto x0 = torch::rand({4, 1, 8, 8}) * 2 - 1;
  auto eps = torch::randn({4, 1, 8, 8});
  auto t = torch::tensor({0, 20, 60, 99}, torch::kLong);
  auto xt = d.q_sample(x0, t, eps);
  EXPECT_TRUE(torch::allclose(d.predict_x0_from_eps(xt, t, eps), x0, 1e-3, 1e-3));
  auto v = d.v_target(x0, t, eps);
  EXPECT_TRUE(torch::allclose(d.eps_from_v(xt, t, v), eps, 1e-4, 1e-4));
}

TEST(GaussianDiffusion, LossIsZeroForThePerfectPredictorAndWeightsAreMinSnr) {
  torch::manual_seed(0);
  DiffusionConfig c;
  GaussianDiffusion d(c, torch::kCPU);
  auto x0 = torch::rand({8, 1, 4, 4});
  auto noise = torch::randn({8, 1, 4, 4});
  auto t = torch::randint(0, 100, {8}, torch::kLong);
  auto labels = torch::zeros({8}, torch::kLong);
  // A model that returns the true noise has zero loss; one that returns zeros has MSE = E[eps^2].
  ModelFn oracle = [&](const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
    return noise;
  };
  ModelFn zero = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return torch::zeros_like(x);
  };
  EXPECT_NEAR(d.training_loss(oracle, x0, labels, t, noise).item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(d.training_loss(zero, x0, labels, t, noise).item<double>(),
              noise.pow(2).mean().item<double>(), 1e-6);
  c.min_snr_gamma = 5;
  GaussianDiffusion weighted(c, torch::kCPU);
  auto w = weighted.loss_weights(torch::tensor({0, 99}, torch::kLong));
  const auto abar = weighted.schedule_f64().alphas_cumprod;
  const double snr0 = abar[0].item<double>() / (1 - abar[0].item<double>());
  EXPECT_NEAR(w[0].item<double>(), 5.0 / snr0, 1e-5);  // high SNR: clipped to gamma
  EXPECT_NEAR(w[1].item<double>(), 1.0, 1e-5);         // low SNR: weight 1
}

TEST(Edm, PreconditioningFollowsKarrasTable1) {
  // EDM's coefficients in the VE variable x^ = x_t / sqrt(abar) = x_0 + sigma n, computed here by
  // hand, against the VP-form ones numeral uses.
  torch::manual_seed(0);
  DiffusionConfig c;
  c.prediction = Prediction::edm;
  c.sigma_data = 0.5;
  GaussianDiffusion d(c, torch::kCPU);
  auto x0 = torch::rand({4, 1, 6, 6}) * 2 - 1;
  auto eps = torch::randn({4, 1, 6, 6});
  auto t = torch::tensor({0, 25, 70, 99}, torch::kLong);
  auto xt = d.q_sample(x0, t, eps);
  const auto f = d.edm_target(x0, t, eps);
  for (int64_t i = 0; i < 4; ++i) {
    const double abar = d.schedule_f64().alphas_cumprod[t[i].item<int64_t>()].item<double>();
    const double sigma = std::sqrt((1 - abar) / abar), sd = 0.5;
    const double c_skip = sd * sd / (sigma * sigma + sd * sd);
    const double c_out = sigma * sd / std::sqrt(sigma * sigma + sd * sd);
    const double c_in = 1 / std::sqrt(sigma * sigma + sd * sd);
    const auto x_hat = xt[i] / std::sqrt(abar);
    EXPECT_TRUE(torch::allclose(f[i], (x0[i] - c_skip * x_hat) / c_out, 1e-4, 1e-4)) << i;
    EXPECT_TRUE(torch::allclose(d.network_input(xt, t)[i], c_in * x_hat, 1e-4, 1e-4)) << i;
    // EDM's loss weight lambda = 1 / c_out^2 makes the F-MSE the x_0-MSE it stands for.
    const auto x0_error = d.x0_from_edm(xt, t, f + 0.1)[i] - x0[i];
    EXPECT_NEAR(x0_error.pow(2).mean().item<double>() / (c_out * c_out), 0.01, 1e-5) << i;
  }
  // The perfect F gives back x_0 and the true noise.
  EXPECT_TRUE(torch::allclose(d.x0_from_edm(xt, t, f), x0, 1e-3, 1e-3));
  EXPECT_TRUE(torch::allclose(d.output_to_eps(xt, t, f), eps, 1e-3, 1e-3));
  // sigma_data = 1: F is minus the v target, and the input is x_t itself.
  c.sigma_data = 1;
  GaussianDiffusion unit(c, torch::kCPU);
  EXPECT_TRUE(torch::allclose(unit.edm_target(x0, t, eps), -unit.v_target(x0, t, eps), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(unit.network_input(xt, t), xt, 1e-5, 1e-5));
  // The loss is zero for the perfect F; min-SNR weighting is for eps and v.
  ModelFn oracle = [&](const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
    return f;
  };
  EXPECT_NEAR(d.training_loss(oracle, x0, torch::zeros({4}, torch::kLong), t, eps).item<double>(),
              0.0, 1e-8);
  c.min_snr_gamma = 5;
  EXPECT_THROW(c.validate(), Error);
}

TEST(LearnedSchedule, StartsAsCosineKeepsItsEndpointsAndStaysMonotone) {
  const DiffusionConfig cosine;
  const auto abar = NoiseSchedule::from_config(cosine).alphas_cumprod;
  LearnedSchedule learned(abar);
  EXPECT_TRUE(torch::allclose(learned->alphas_cumprod(), abar, 1e-9, 1e-12));
  // Any parameters keep both endpoints and a strictly increasing gamma (decreasing abar).
  torch::manual_seed(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : learned->parameters()) p.add_(torch::randn_like(p) * 3);
  }
  const auto gamma = learned->gamma();
  const auto start = torch::log1p(-abar) - torch::log(abar);
  EXPECT_NEAR(gamma[0].item<double>(), start[0].item<double>(), 1e-9);
  EXPECT_NEAR(gamma[-1].item<double>(), start[-1].item<double>(), 1e-9);
  EXPECT_TRUE((gamma.slice(0, 1) - gamma.slice(0, 0, -1)).gt(0).all().item<bool>());
  // The schedule built from it is a valid NoiseSchedule: abar round-trips through the betas.
  const auto s = NoiseSchedule::from_alphas_cumprod(learned->alphas_cumprod());
  EXPECT_TRUE(torch::allclose(s.alphas_cumprod, learned->alphas_cumprod(), 1e-9, 1e-12));
  EXPECT_TRUE(s.betas.gt(0).all().item<bool>());
  EXPECT_TRUE(s.betas.lt(1).all().item<bool>());
  EXPECT_THROW(LearnedSchedule(torch::tensor({0.5})), Error);
  EXPECT_THROW(LearnedSchedule(torch::tensor({0.5, 0.7})), Error);  // not decreasing
}

TEST(LearnedSchedule, VarianceObjectiveIsTheSecondMomentOfTheVlbTerms) {
  const auto abar = NoiseSchedule::from_config(DiffusionConfig{}).alphas_cumprod;
  LearnedSchedule learned(abar);
  const auto t = torch::tensor({0, 1, 50, 99}, torch::kLong);
  const auto mse = torch::tensor({9.0, 0.5, 0.2, 0.1}, torch::kDouble);
  const auto snr = abar / (1 - abar);
  double expected = 0;
  for (int64_t i = 1; i < 4; ++i) {  // t = 0 has no earlier step: left out
    const int64_t k = t[i].item<int64_t>();
    const double w = snr[k - 1].item<double>() - snr[k].item<double>();
    expected += std::pow(w * mse[i].item<double>(), 2) / 3;
  }
  const auto objective = learned->variance_objective(t, mse);
  EXPECT_NEAR(objective.item<double>() / expected, 1.0, 1e-6);
  // Its gradient reaches the schedule, and one gradient step lowers it.
  objective.backward();
  torch::optim::SGD sgd(learned->parameters(), torch::optim::SGDOptions(1e-3 / expected));
  sgd.step();
  EXPECT_LT(learned->variance_objective(t, mse).item<double>(), objective.item<double>());
}

TEST(LearnedSchedule, TrainingLossValueIsTheNetworksAndItsStateRoundTrips) {
  torch::manual_seed(0);
  DiffusionConfig c;
  c.schedule = Schedule::learned;
  GaussianDiffusion learned(c, torch::kCPU), cosine(DiffusionConfig{}, torch::kCPU);
  EXPECT_TRUE(torch::allclose(learned.schedule_f64().alphas_cumprod,
                              cosine.schedule_f64().alphas_cumprod, 1e-9, 1e-12));
  ASSERT_EQ(learned.parameters().size(), 1u);
  EXPECT_TRUE(cosine.parameters().empty());
  auto x0 = torch::rand({8, 1, 4, 4});
  auto noise = torch::randn({8, 1, 4, 4});
  auto t = torch::randint(1, 100, {8}, torch::kLong);
  ModelFn zero = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return torch::zeros_like(x);
  };
  const auto labels = torch::zeros({8}, torch::kLong);
  const auto loss = learned.training_loss(zero, x0, labels, t, noise);
  EXPECT_NEAR(loss.item<double>(), cosine.training_loss(zero, x0, labels, t, noise).item<double>(),
              1e-6);
  loss.backward();
  ASSERT_TRUE(learned.parameters()[0].grad().defined());
  EXPECT_GT(learned.parameters()[0].grad().abs().sum().item<double>(), 0);
  // A changed schedule survives a checkpoint's state: the tables follow.
  {
    torch::NoGradGuard no_grad;
    learned.parameters()[0].add_(torch::randn_like(learned.parameters()[0]));
  }
  learned.refresh_schedule();
  GaussianDiffusion restored(c, torch::kCPU);
  restored.load_schedule_state(learned.schedule_state(), "memory");
  EXPECT_TRUE(torch::allclose(restored.schedule_f64().alphas_cumprod,
                              learned.schedule_f64().alphas_cumprod, 1e-12, 1e-15));
  EXPECT_FALSE(torch::allclose(restored.schedule_f64().alphas_cumprod,
                               cosine.schedule_f64().alphas_cumprod, 1e-6, 1e-9));
  EXPECT_THROW(restored.load_schedule_state({}, "empty.safetensors"), Error);
}

TEST(Guidance, FormulaAndOneBatchedPass) {
  auto ec = torch::full({1, 1, 2, 2}, 2.0), eu = torch::full({1, 1, 2, 2}, 1.0);
  EXPECT_TRUE(guided_eps(ec, eu, 0.0).equal(ec));
  EXPECT_NEAR(guided_eps(ec, eu, 2.0)[0][0][0][0].item<double>(), 3 * 2.0 - 2 * 1.0, 1e-12);
  int calls = 0;
  torch::Tensor seen_labels;
  // A fake model: eps = label + 1 (null label -1 gives 0), so guidance is checkable by hand.
  ModelFn model = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& y) {
    ++calls;
    seen_labels = y;
    return (y.to(torch::kFloat) + 1).view({-1, 1, 1, 1}).expand_as(x).contiguous();
  };
  auto labels = torch::tensor({3, 5}, torch::kLong);
  auto denoiser = classifier_free_guidance(model, labels, 1.5);
  auto out = denoiser(torch::zeros({2, 1, 2, 2}), torch::zeros({2}, torch::kLong));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen_labels.equal(torch::tensor({3, 5, -1, -1}, torch::kLong)));
  EXPECT_NEAR(out[0][0][0][0].item<double>(), 2.5 * 4 - 1.5 * 0, 1e-6);
  EXPECT_NEAR(out[1][0][0][0].item<double>(), 2.5 * 6, 1e-6);
  // w = 0: one plain conditional pass of B.
  calls = 0;
  classifier_free_guidance(model, labels, 0.0)(torch::zeros({2, 1, 2, 2}),
                                               torch::zeros({2}, torch::kLong));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_labels.size(0), 2);
  EXPECT_THROW(classifier_free_guidance(model, labels, std::nan("")), Error);
}

TEST(InChunks, SameOutputAsOneCallWithBoundedCalls) {
  std::vector<int64_t> call_sizes;
  // A per-image model whose output depends on x, t and the label, so any misrouting shows.
  ModelFn model = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
    call_sizes.push_back(x.size(0));
    return x * t.to(torch::kFloat).view({-1, 1, 1, 1}) + y.to(torch::kFloat).view({-1, 1, 1, 1});
  };
  torch::manual_seed(1);
  const auto x = torch::randn({7, 1, 3, 3});
  const auto t = torch::arange(7, torch::kLong), y = torch::tensor({3, 1, 4, 1, 5, 9, -1});
  const auto reference = model(x, t, y);
  call_sizes.clear();
  EXPECT_TRUE(torch::equal(in_chunks(model, 3)(x, t, y), reference));
  EXPECT_EQ(call_sizes, (std::vector<int64_t>{3, 3, 1}));
  call_sizes.clear();
  EXPECT_TRUE(torch::equal(in_chunks(model, 7)(x, t, y), reference));
  EXPECT_TRUE(torch::equal(in_chunks(model, 0)(x, t, y), reference));  // 0: one call
  EXPECT_EQ(call_sizes, (std::vector<int64_t>{7, 7}));
}

// A denoiser that knows x_0 returns the true noise of any x_t.
Denoiser oracle_denoiser(const NoiseSchedule& s, const torch::Tensor& x0) {
  return [&s, x0](const torch::Tensor& x, const torch::Tensor& t) {
    auto a = extract(s.sqrt_alphas_cumprod, t).to(torch::kFloat);
    auto b = extract(s.sqrt_one_minus_alphas_cumprod, t).to(torch::kFloat);
    return (x - a * x0) / b;
  };
}

TEST(Samplers, OracleDenoiserRecoversX0) {
  torch::manual_seed(0);
  const auto s = NoiseSchedule::from_config(DiffusionConfig{});
  auto x0 = torch::rand({3, 1, 6, 6}) * 1.6 - 0.8;
  auto gen = make_generator(0);
  auto xT = torch::randn({3, 1, 6, 6});
  for (const std::string name : {"ddim", "dpm++2m"}) {
    for (int64_t steps : {1, 10, 100}) {
      SamplerOptions o;
      o.name = parse_enum<SamplerName>(name, "sampler");
      o.steps = steps;
      auto out = sample(s, oracle_denoiser(s, x0), xT, o, gen);
      // float32: predicting x_0 at t = T-1 divides by sqrt(abar) ~ 3e-3, amplifying rounding.
      EXPECT_LT((out - x0).abs().max().item<double>(), 5e-4) << name << " steps " << steps;
    }
  }
}

TEST(Samplers, TimestepsAndValidation) {
  EXPECT_EQ(sampling_timesteps(100, 5), (std::vector<int64_t>{99, 74, 50, 25, 0}));
  EXPECT_EQ(sampling_timesteps(10, 10), (std::vector<int64_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(sampling_timesteps(100, 1), (std::vector<int64_t>{99}));
  SamplerOptions o;
  o.steps = 101;
  EXPECT_THROW(o.validate(100), Error);
  EXPECT_ERROR(parse_enum<SamplerName>("euler", "sampler"),
               "sampler euler: expected ddpm, ddim or dpm++2m");
  EXPECT_ERROR(parse_enum<Variance>("learned", "variance"),
               "variance learned: expected posterior or beta");
  EXPECT_EQ(SamplerOptions{}.resolved_steps(100), 100);
}

TEST(Samplers, DdpmStepMatchesNamedCoefficients) {
  // One full-length DDPM step from t = T-1 with a constant-eps denoiser, by hand.
  const auto s = NoiseSchedule::from_config(config_with("cosine", 10));
  const int64_t t = 9;
  auto x = torch::full({1, 1, 1, 1}, 0.3);
  Denoiser constant = [](const torch::Tensor& x, const torch::Tensor&) {
    return torch::full_like(x, 0.2);
  };
  SamplerOptions o;
  o.clip_x0 = false;
  std::vector<SamplerStep> steps;
  torch::Tensor after_first;
  o.on_step = [&](const SamplerStep& step) { steps.push_back(step); };
  auto gen = make_generator(42);
  ddpm_sample(s, constant, x, o, noise_from(gen));
  ASSERT_EQ(steps.size(), 10u);
  const double abar = s.alphas_cumprod[t].item<double>();
  const double x0 = (0.3 - std::sqrt(1 - abar) * 0.2) / std::sqrt(abar);
  EXPECT_NEAR(steps[0].x0.item<double>(), x0, 1e-5);
  const double mean = s.posterior_mean_coef1[t].item<double>() * x0 +
                      s.posterior_mean_coef2[t].item<double>() * 0.3;
  // x before step 1 = mean + sqrt(beta~_t) z, with z the generator's first normal draw.
  auto z = torch::randn({1, 1, 1, 1}, make_generator(42));
  const double expected =
      mean + std::sqrt(s.posterior_variance[t].item<double>()) * z.item<double>();
  EXPECT_NEAR(steps[1].x_t.item<double>(), expected, 1e-5);
}

}  // namespace
}  // namespace numeral
