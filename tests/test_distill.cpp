// Progressive distillation: the trailing grid, the two-step target against a hand computation, a
// student that starts as its teacher, a tiny run whose loss falls and resumes exactly, a student
// that samples with one call per step, and students and teachers refused where the other belongs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "numeral/common/fs.h"
#include "numeral/diffusion/distillation.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/inference/generate.h"
#include "numeral/io/checkpoint.h"
#include "numeral/train/distill.h"
#include "numeral/train/trainer.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

torch::Tensor longs(std::vector<int64_t> values) {
  return torch::tensor(values, torch::kLong);
}

TEST(TrailingGrid, MatchesTheSamplerAndNests) {
  EXPECT_EQ(sampling_timesteps(100, 4, Spacing::trailing), (std::vector<int64_t>{99, 74, 49, 24}));
  EXPECT_EQ(sampling_timesteps(100, 1, Spacing::trailing), (std::vector<int64_t>{99}));
  for (const int64_t n : {1, 2, 4, 8, 16, 32, 64}) {
    const auto ts = sampling_timesteps(100, n, Spacing::trailing);
    const auto k = torch::arange(n + 1, torch::kLong);
    const auto grid = trailing_grid_point(100, n, k);
    EXPECT_EQ(grid[0].item<int64_t>(), -1) << n;
    for (int64_t i = 1; i <= n; ++i) EXPECT_EQ(grid[i].item<int64_t>(), ts[n - i]) << n << " " << i;
    if (n <= 32) {  // the n-step grid is every other point of the 2n-step grid
      EXPECT_TRUE(grid.equal(trailing_grid_point(100, 2 * n, 2 * k))) << n;
    }
  }
  EXPECT_ERROR(parse_enum<Spacing>("uniform", "spacing"),
               "spacing uniform: expected linspace or trailing");
}

// The schedule abar = 0.9, 0.6, 0.3, 0.1 and a teacher that predicts eps = 0.5 x, by hand.
struct HandSchedule {
  const double abar[4] = {0.9, 0.6, 0.3, 0.1};
  NoiseSchedule schedule =
      NoiseSchedule::from_alphas_cumprod(torch::tensor({0.9, 0.6, 0.3, 0.1}, torch::kDouble));
  double at(int64_t t) const { return t < 0 ? 1.0 : abar[t]; }
  // One DDIM step from t to s of the scalar z with eps = e, as in DDIM eq. 12.
  double step(double z, double e, int64_t t, int64_t s, bool clip) const {
    double x0 = (z - std::sqrt(1 - at(t)) * e) / std::sqrt(at(t));
    if (clip) {
      x0 = std::clamp(x0, -1.0, 1.0);
      e = (z - std::sqrt(at(t)) * x0) / std::sqrt(1 - at(t));
    }
    return std::sqrt(at(s)) * x0 + std::sqrt(1 - at(s)) * e;
  }
  double target(double z, int64_t t, int64_t mid, int64_t next, bool clip) const {
    const double z_mid = step(z, 0.5 * z, t, mid, clip);
    const double z_next = step(z_mid, 0.5 * z_mid, mid, next, clip);
    const double ratio = std::sqrt(1 - at(next)) / std::sqrt(1 - at(t));
    return (z_next - ratio * z) / (std::sqrt(at(next)) - ratio * std::sqrt(at(t)));
  }
};

TEST(ProgressiveDistillation, TargetMatchesAHandComputation) {
  const HandSchedule hand;
  const Denoiser teacher = [](const torch::Tensor& x, const torch::Tensor&) { return 0.5 * x; };
  const auto z = torch::tensor({0.8, -0.3}, torch::kDouble).view({2, 1, 1, 1});
  // Image 0 goes 3 -> 2 -> 1, image 1 goes 1 -> 0 -> clean.
  const auto t = longs({3, 1}), mid = longs({2, 0}), next = longs({1, -1});
  for (const bool clip : {false, true}) {
    const auto got = progressive_distillation_target(hand.schedule, teacher, z, t, mid, next, clip);
    EXPECT_NEAR(got[0].item<double>(), hand.target(0.8, 3, 2, 1, clip), 1e-12) << clip;
    EXPECT_NEAR(got[1].item<double>(), hand.target(-0.3, 1, 0, -1, clip), 1e-12) << clip;
    // The defining property: one DDIM step from t to next with x_0 = target lands where the
    // teacher's two steps land.
    const auto abar_t = abar_at(hand.schedule, t);
    const auto student_eps = (z - abar_t.sqrt() * got) / (1 - abar_t).sqrt();
    const auto one_step = ddim_step(hand.schedule, z, t, next, student_eps, /*clip_x0=*/false);
    const auto z_mid = ddim_step(hand.schedule, z, t, mid, 0.5 * z, clip);
    const auto two_steps = ddim_step(hand.schedule, z_mid, mid, next, 0.5 * z_mid, clip);
    EXPECT_TRUE(torch::allclose(one_step, two_steps, 1e-12, 1e-12)) << clip;
  }
  // The first image's x_0 estimate at t = 3 is (0.8 - sqrt(0.9) 0.4) / sqrt(0.1) = 1.33: clipping
  // changes the target.
  EXPECT_GT(std::abs(hand.target(0.8, 3, 2, 1, true) - hand.target(0.8, 3, 2, 1, false)), 0.01);
}

TEST(ProgressiveDistillation, TruncatedSnrWeightIsMaxOfSnrAndOne) {
  const HandSchedule hand;
  const auto w = truncated_snr_weight(hand.schedule, longs({0, 1, 2, 3}));
  EXPECT_NEAR(w[0].item<double>(), 9.0, 1e-12);  // 0.9 / 0.1
  EXPECT_NEAR(w[1].item<double>(), 1.5, 1e-12);  // 0.6 / 0.4
  EXPECT_NEAR(w[2].item<double>(), 1.0, 1e-12);  // 0.3 / 0.7 < 1
  EXPECT_NEAR(w[3].item<double>(), 1.0, 1e-12);
}

// A tiny teacher trained once per test process (12 steps on the synthetic digits).
struct TinyTeacher : TempDir {
  TinyTeacher() {
    torch::set_num_threads(1);
    TrainerOptions o;
    o.run_dir = path();
    Trainer(tiny_run(), o).run();
  }
};

const fs::path& tiny_teacher() {
  static const TinyTeacher teacher;
  return teacher.path();
}

DistillConfig tiny_distill(int64_t from_steps, int64_t to_steps, int64_t round_steps) {
  DistillConfig d;
  d.teacher = tiny_teacher().string();
  d.from_steps = from_steps;
  d.to_steps = to_steps;
  d.round_steps = round_steps;
  return d;
}

TrainerOptions student_options(const fs::path& run_dir, const DistillConfig& d,
                               bool resume = false) {
  TrainerOptions o;
  o.run_dir = run_dir;
  o.resume = resume;
  o.objective =
      std::make_shared<ProgressiveDistillation>(d, load_trained_model(d.teacher, torch::kCPU));
  return o;
}

TEST(Student, StartsAsTheConditionalTeacherForEveryWeight) {
  TrainedModel teacher = load_trained_model(tiny_teacher(), torch::kCPU);
  torch::NoGradGuard no_grad;
  const DistillConfig d = tiny_distill(8, 4, 4);
  ProgressiveDistillation objective(d, load_trained_model(tiny_teacher(), torch::kCPU));
  const RunConfig config = student_config(teacher, d, tiny_run().train);
  EXPECT_TRUE(config.model.guidance_input);
  EXPECT_EQ(config.train.max_steps, 4);
  UNet student(config.model);
  objective.initialise(student);
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = longs({0, 7, 19}), y = longs({1, kNullLabel, 9});
  const auto expected = teacher.model->forward(x, t, y);
  for (const double w : {0.0, 3.0}) {
    const auto got = student->forward(x, t, y, torch::full({3}, w));
    EXPECT_TRUE(torch::allclose(got, expected, 1e-6, 1e-6)) << w;
  }
  EXPECT_THROW(student->forward(x, t, y), c10::Error);  // "needs the guidance w"
  EXPECT_THROW(teacher.model->forward(x, t, y, torch::zeros({3})), c10::Error);
}

// Round 1's teacher with autoguidance: classifier-free guidance at each image's w plus w_guide
// (eps(y) - eps_guide(y)), as computed by hand from the two models' own calls; a teacher guided by
// itself gets nothing added, and one without a guide is refused.
TEST(ProgressiveDistillation, TheFirstRoundsTeacherIsAutoguidedByItsGuide) {
  tiny_teacher();  // trained (with gradients) before the guard below
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  TrainedModel teacher = load_trained_model(tiny_teacher(), torch::kCPU);
  TrainedModel weaker = load_trained_model(tiny_teacher(), torch::kCPU);
  for (auto& p : weaker.model->parameters()) p.add_(0.05 * torch::randn_like(p));
  attach_guide(teacher, weaker);
  DistillConfig d = tiny_distill(8, 4, 4);
  d.w_guide = 1.5;
  ProgressiveDistillation objective(d, teacher);
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = longs({0, 7, 19}), y = longs({1, 4, 9});
  const auto w = torch::tensor({0.0f, 0.5f, 2.0f});
  const auto eps = eps_model(teacher.model, teacher.diffusion);
  const auto cond = eps(x, t, y), null = eps(x, t, torch::full_like(y, kNullLabel));
  const auto guide = eps_model(weaker.model, weaker.diffusion)(x, t, y);
  ASSERT_FALSE(torch::allclose(guide, cond, 1e-3, 1e-3));
  const auto expected = cond + w.view({-1, 1, 1, 1}) * (cond - null) + 1.5 * (cond - guide);
  EXPECT_TRUE(torch::allclose(objective.teacher_eps(x, t, y, w), expected, 1e-5, 1e-5));

  TrainedModel self = load_trained_model(tiny_teacher(), torch::kCPU);
  attach_guide(self, load_trained_model(tiny_teacher(), torch::kCPU));
  const auto unguided =
      ProgressiveDistillation(tiny_distill(8, 4, 4), self).teacher_eps(x, t, y, w);
  EXPECT_TRUE(torch::allclose(ProgressiveDistillation(d, self).teacher_eps(x, t, y, w), unguided,
                              1e-5, 1e-5));
  EXPECT_ERROR(ProgressiveDistillation(d, load_trained_model(tiny_teacher(), torch::kCPU)),
               "w_guide 1.5: the teacher", "bundles no guide to autoguide against");
}

TEST(Student, LossFallsOverARound) {
  torch::set_num_threads(1);
  const TempDir run;
  const DistillConfig d = tiny_distill(4, 2, 24);
  RunConfig c = student_config(load_trained_model(d.teacher, torch::kCPU), d, tiny_run().train);
  const auto result = Trainer(c, student_options(run.path(), d)).run();
  ASSERT_EQ(result.history.size(), 6u);
  EXPECT_LT(result.history.back().train_loss, 0.7 * result.history.front().train_loss);
  EXPECT_LT(result.history.back().val_loss, result.history.front().val_loss);
  const TrainedModel student = load_trained_model(run.path(), torch::kCPU);
  EXPECT_EQ(student.student_steps, 2);
  EXPECT_TRUE(student.config.distill.has_value());
}

TEST(Student, ResumeAcrossARoundReproducesTheUninterruptedRun) {
  torch::set_num_threads(1);
  const TempDir straight_dir, split_dir;
  const DistillConfig d = tiny_distill(8, 2, 6);  // 2 rounds of 6 steps; epochs of 4 steps
  RunConfig c = student_config(load_trained_model(d.teacher, torch::kCPU), d, tiny_run().train);
  const auto straight = Trainer(c, student_options(straight_dir.path(), d)).run();
  EXPECT_EQ(straight.steps, 12);
  RunConfig first_part = c;
  first_part.train.max_steps = 9;  // inside round 2: its teacher is in the checkpoint
  Trainer(first_part, student_options(split_dir.path(), d)).run();
  const Checkpoint partial = load_checkpoint(split_dir.path(), kStudentKind);
  EXPECT_EQ(partial.state.at("round"), 1);
  EXPECT_EQ(partial.state.at("student_steps"), 2);
  EXPECT_TRUE(partial.tensors.count("teacher.out_conv2.weight"));
  const auto resumed = Trainer(c, student_options(split_dir.path(), d, /*resume=*/true)).run();
  ASSERT_EQ(resumed.history.size(), straight.history.size());
  for (size_t i = 0; i < straight.history.size(); ++i) {
    EXPECT_DOUBLE_EQ(resumed.history[i].train_loss, straight.history[i].train_loss) << i;
    EXPECT_DOUBLE_EQ(resumed.history[i].val_loss, straight.history[i].val_loss) << i;
  }
  const auto a = load_checkpoint(straight_dir.path(), kStudentKind);
  const auto b = load_checkpoint(split_dir.path(), kStudentKind);
  EXPECT_TRUE(a.tensors.at("ema.out_conv2.weight").equal(b.tensors.at("ema.out_conv2.weight")));
}

TEST(Student, SamplesWithOneCallPerStepOnItsTrailingGrid) {
  torch::set_num_threads(1);
  const TempDir run;
  const DistillConfig d = tiny_distill(4, 2, 4);
  RunConfig c = student_config(load_trained_model(d.teacher, torch::kCPU), d, tiny_run().train);
  Trainer(c, student_options(run.path(), d)).run();
  TrainedModel student = load_trained_model(run.path(), torch::kCPU);
  GenerateOptions requested;
  requested.guidance = 1.5;
  const GenerateOptions o = options_for(student, requested);
  EXPECT_EQ(o.sampler.name, SamplerName::ddim);
  EXPECT_EQ(o.sampler.steps, 2);
  EXPECT_EQ(o.sampler.spacing, Spacing::trailing);
  // One network call of B images per step, with w as the input.
  const auto labels = longs({3, 4, kNullLabel});
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = longs({19, 19, 19});
  torch::NoGradGuard no_grad;
  const auto eps = guided_denoiser(student.model, student.diffusion, labels, o)(x, t);
  const auto direct = student.diffusion->predict_eps(
      [&](const torch::Tensor& in, const torch::Tensor& time, const torch::Tensor& y) {
        return student.model->forward(in, time, y, torch::full({in.size(0)}, 1.5));
      },
      x, t, labels);
  EXPECT_TRUE(torch::allclose(eps, direct, 1e-6, 1e-6));
  std::vector<int64_t> visited;
  GenerateOptions counted = o;
  counted.sampler.on_step = [&](const SamplerStep& s) { visited.push_back(s.t); };
  const auto images = generate(student.model, student.diffusion, labels, counted);
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{3, 1, 28, 28}));
  EXPECT_EQ(visited, (std::vector<int64_t>{19, 9}));  // trailing grid of 2 steps for T = 20
  // Guidance in an interval: the student given w at the steps inside it, w = 0 at the others (one
  // call per step either way). The guidance embedding is randomised so that w changes the output.
  {
    torch::NoGradGuard randomise;
    for (auto& p : student.model->named_parameters()) {
      if (p.key().rfind("guidance_embed", 0) == 0) p.value().normal_(0, 1);
    }
  }
  const auto student_eps = [&](double w, const torch::Tensor& time) {
    return student.diffusion->predict_eps(
        [&](const torch::Tensor& in, const torch::Tensor& tt, const torch::Tensor& y) {
          return student.model->forward(in, tt, y, torch::full({in.size(0)}, w));
        },
        x, time, labels);
  };
  GenerateOptions interval = o;
  interval.guidance_interval = {10, 18};
  const Denoiser within = guided_denoiser(student.model, student.diffusion, labels, interval);
  ASSERT_FALSE(torch::allclose(student_eps(1.5, t), student_eps(0, t), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(within(x, t), student_eps(0, t), 1e-6, 1e-6));  // t = 19: outside
  const auto t15 = longs({15, 15, 15});
  EXPECT_TRUE(torch::allclose(within(x, t15), student_eps(1.5, t15), 1e-6, 1e-6));
  GenerateOptions unguided = o;
  unguided.guidance = 0;
  EXPECT_TRUE(torch::equal(generate(student.model, student.diffusion, labels, interval),
                           generate(student.model, student.diffusion, labels, unguided)));
  // Anything but its own sampler is refused with what was asked.
  GenerateOptions other = requested;
  other.sampler.name = SamplerName::dpmpp_2m;
  EXPECT_ERROR(options_for(student, other),
               "sampler dpm++2m: a distilled student samples only with ddim at its 2 steps "
               "(asked for dpm++2m with 20 steps");
  other.sampler.name = SamplerName::ddim;
  other.sampler.steps = 3;
  EXPECT_ERROR(options_for(student, other), "asked for ddim with 3 steps");
  // ... and a student is no teacher, nor a teacher's run a student's.
  EXPECT_ERROR(ProgressiveDistillation(d, load_trained_model(run.path(), torch::kCPU)),
               "is a distilled student (2 steps); distil from a trained model");
  TrainerOptions as_teacher;
  as_teacher.run_dir = run.path();
  as_teacher.resume = true;
  EXPECT_ERROR(Trainer(c, as_teacher), "is a student checkpoint, expected a diffusion checkpoint");
  EXPECT_ERROR(Trainer(tiny_run(), student_options(tiny_teacher(), d, /*resume=*/true)),
               "is a diffusion checkpoint, expected a student checkpoint");
}

// --- `numeral distill` through the CLI
// ------------------------------------------------------------

std::string distill_args(const fs::path& run, const std::string& extra = "") {
  return fmt::format(
      "distill --teacher '{}' --run-dir '{}' --from-steps 4 --to-steps 2 --round-steps 100000 "
      "--batch-size 16 --val-samples 16 --threads 1{}",
      tiny_teacher().string(), run.string(), extra);
}

TEST(DistillCli, SigtermCheckpointsAndTheResumedStudentSamples) {
  SKIP_WITHOUT_CLI();
  const TempDir scratch;
  const fs::path run = scratch / "student";
  CliProcess distilling(distill_args(run), scratch.path());
  ASSERT_TRUE(distilling.wait_for_output("epoch   1 ")) << distilling.out();
  distilling.send(SIGTERM);
  const CliResult stopped = distilling.wait();
  EXPECT_EQ(stopped.rc, 143) << stopped.err;
  EXPECT_EQ(stopped.err_lines(), 1) << stopped.err;
  EXPECT_TRUE(contains(stopped.out, "numeral distill --run-dir")) << stopped.out;
  const int64_t step = load_checkpoint(run, kStudentKind).state.at("step");
  EXPECT_GE(step, 4);
  // A resumed distillation takes no config flags; a student takes no teacher's commands.
  const std::string resume =
      fmt::format("distill --run-dir '{}' --resume --threads 1", run.string());
  const CliResult changed = run_cli(resume + " --lr 0.1");
  EXPECT_EQ(changed.rc, 1);
  EXPECT_TRUE(contains(changed.err,
                       "--resume continues the distillation as it was configured: "
                       "drop --lr"))
      << changed.err;
  const CliResult data = run_cli(distill_args(scratch / "other", " --data mnist"));
  EXPECT_TRUE(contains(data.err, "--data: a student trains on its teacher's data")) << data.err;
  const CliResult as_teacher = run_cli(
      fmt::format("distill --teacher '{}' --run-dir '{}' --from-steps 4 --to-steps 2 --threads 1",
                  run.string(), (scratch / "other").string()));
  EXPECT_TRUE(contains(as_teacher.err, "is a distilled student (2 steps); distil from a trained"))
      << as_teacher.err;
  const CliResult train_resume =
      run_cli(fmt::format("train --run-dir '{}' --resume --threads 1", run.string()));
  EXPECT_TRUE(
      contains(train_resume.err, "is a student checkpoint, expected a diffusion checkpoint"))
      << train_resume.err;
  const CliResult init_from = run_cli(
      fmt::format("train --init-from '{}' --data '{}' --run-dir '{}' --threads 1", run.string(),
                  synthetic_dataset().string(), (scratch / "tuned").string()));
  EXPECT_EQ(init_from.rc, 1);
  EXPECT_EQ(init_from.err_lines(), 1) << init_from.err;
  EXPECT_TRUE(contains(init_from.err,
                       "a distilled student; start from the model it was "
                       "distilled from"))
      << init_from.err;
  EXPECT_FALSE(fs::exists(scratch / "tuned" / "checkpoint.safetensors"));
  // The student samples with its own 2 steps by default, and refuses another sampler.
  const CliResult sampled =
      run_cli(fmt::format("sample --checkpoint '{}' --per-digit 2 --w 1 --grid '{}' --threads 1",
                          run.string(), (scratch / "grid.png").string()));
  ASSERT_EQ(sampled.rc, 0) << sampled.err;
  EXPECT_TRUE(contains(sampled.out, "sampler ddim, 2 steps")) << sampled.out;
  const CliResult other =
      run_cli(fmt::format("sample --checkpoint '{}' --sampler dpm++2m --threads 1", run.string()));
  EXPECT_EQ(other.err_lines(), 1) << other.err;
  EXPECT_TRUE(contains(
      other.err, "--sampler dpm++2m: a distilled student samples only with ddim at its 2 steps"))
      << other.err;
}

// The eval reports name the sampler that ran: a student's own ddim steps, not the request's
// default (a sweep once printed "ddpm (100 steps)" for a 4-step student).
TEST(DistillCli, EvalReportsNameTheStudentsOwnSampler) {
  SKIP_WITHOUT_CLI();
  torch::set_num_threads(1);
  const TempDir dir;
  const CliResult judge = run_cli(
      fmt::format("classifier train --data '{}' --epochs 1 --width 4 --feature-dim 8 --out '{}' "
                  "--threads 1",
                  synthetic_dataset().string(), (dir / "judge").string()),
      dir.path());
  ASSERT_EQ(judge.rc, 0) << judge.err;
  const DistillConfig d = tiny_distill(4, 2, 4);
  RunConfig c = student_config(load_trained_model(d.teacher, torch::kCPU), d, tiny_run().train);
  Trainer(c, student_options(dir / "student", d)).run();
  const CliResult sweep = run_cli(
      fmt::format("eval sweep --checkpoint '{}' --classifier '{}' --w 0,1 --samples 10 --out '{}' "
                  "--threads 1",
                  (dir / "student").string(), (dir / "judge").string(), (dir / "sweep").string()),
      dir.path());
  ASSERT_EQ(sweep.rc, 0) << sweep.err;
  EXPECT_TRUE(contains(sweep.out, "sampler ddim (2 steps)")) << sweep.out;
  const auto report = nlohmann::json::parse(read_file(dir / "sweep" / "sweep.json"));
  EXPECT_EQ(report.at("data").at("sampler"), "ddim") << report.dump();
  EXPECT_EQ(report.at("data").at("steps"), 2) << report.dump();
  EXPECT_EQ(report.at("data").at("default_w"), kDefaultGuidance) << report.dump();
  EXPECT_TRUE(contains(sweep.out, "default w: 0.25, what sample, eval and serve use")) << sweep.out;
}

TEST(DistillConfig, RejectsBadValues) {
  auto with = [](auto change) {
    DistillConfig d;
    d.teacher = "t";
    change(d);
    return d;
  };
  EXPECT_ERROR(with([](DistillConfig& d) { d.from_steps = 48; }).validate(100),
               "expected a power of two");
  EXPECT_ERROR(with([](DistillConfig& d) { d.from_steps = 128; }).validate(100), "at most T = 100");
  EXPECT_ERROR(with([](DistillConfig& d) { d.to_steps = 0; }).validate(100),
               "to_steps 0: expected at least 1");
  EXPECT_ERROR(with([](DistillConfig& d) { d.w_min = 3; }).validate(100),
               "w_max 2: expected at least w_min = 3");
  EXPECT_ERROR(with([](DistillConfig& d) { d.round_steps = 0; }).validate(100),
               "round_steps 0: expected at least 1");
  EXPECT_EQ(with([](DistillConfig&) {}).rounds(), 4);
  EXPECT_EQ(with([](DistillConfig&) {}).student_steps(3), 4);
}

}  // namespace
}  // namespace numeral
