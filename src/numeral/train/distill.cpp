#include "numeral/train/distill.h"

#include <nlohmann/json.hpp>

#include "numeral/common/error.h"
#include "numeral/diffusion/distillation.h"
#include "numeral/diffusion/guidance.h"
#include "numeral/io/checkpoint.h"

namespace numeral {
namespace {

constexpr const char* kTeacherPrefix = "teacher.";

// Copies every parameter and buffer of `from` into the tensor of the same name in `to`.
void copy_weights(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto target = to.named_parameters();
  auto buffers = to.named_buffers();
  for (const auto& item : from.named_parameters()) target[item.key()].copy_(item.value());
  for (const auto& item : from.named_buffers()) buffers[item.key()].copy_(item.value());
}

// The network's x_0 estimate with guidance weights w ([B]) as its input.
torch::Tensor student_x0(UNet& model, const GaussianDiffusion& diffusion, const torch::Tensor& z,
                         const torch::Tensor& t, const torch::Tensor& labels,
                         const torch::Tensor& w) {
  const auto eps =
      diffusion.predict_eps([&](const torch::Tensor& x, const torch::Tensor& time,
                                const torch::Tensor& y) { return model->forward(x, time, y, w); },
                            z, t, labels);
  return diffusion.predict_x0_from_eps(z, t, eps);
}

}  // namespace

void check_teacher(const TrainedModel& teacher, const DistillConfig& distill) {
  NUMERAL_CHECK(teacher.student_steps == 0,
                "{} is a distilled student ({} steps); distil from a trained model (numeral train)",
                teacher.path.string(), teacher.student_steps);
  NUMERAL_CHECK(teacher.config.diffusion.schedule != Schedule::learned,
                "{}: distilling a learned noise schedule is not supported; use a model trained "
                "with a fixed --schedule",
                teacher.path.string());
  distill.validate(teacher.diffusion->T());
  NUMERAL_FIELD_CHECK(distill.w_guide == 0 || teacher.guide, "w_guide",
                      "w_guide {}: the teacher {} bundles no guide to autoguide against (`numeral "
                      "model export --guide`)",
                      distill.w_guide, teacher.path.string());
}

RunConfig student_config(const TrainedModel& teacher, const DistillConfig& distill,
                         const TrainConfig& optimisation) {
  RunConfig c;
  c.model = teacher.config.model;
  c.model.guidance_input = true;
  c.diffusion = teacher.config.diffusion;
  c.train = optimisation;
  const TrainConfig& data = teacher.config.train;  // the teacher's data, split and subset
  c.train.data = data.data;
  c.train.val_fraction = data.val_fraction;
  c.train.split_seed = data.split_seed;
  c.train.limit = data.limit;
  c.train.per_class = data.per_class;
  c.train.preview_every = 0;
  c.train.bf16 = optimisation.bf16;
  c.train.max_steps = distill.rounds() * distill.round_steps;
  c.train.epochs = c.train.max_steps;  // a bound: the run ends at max_steps
  c.distill = distill;
  return c;
}

ProgressiveDistillation::ProgressiveDistillation(DistillConfig config, TrainedModel teacher)
    : config_(std::move(config)), original_(std::move(teacher)) {
  check_teacher(original_, config_);
  original_.model->eval();
}

void ProgressiveDistillation::initialise(UNet& student) {
  copy_weights(*original_.model, *student);
}

void ProgressiveDistillation::begin_step(int64_t step, UNet& model, UNet& ema_model) {
  const int64_t round = step / config_.round_steps;
  if (round == round_) return;
  NUMERAL_CHECK(round == round_ + 1 && round < config_.rounds(),
                "distill: step {} is in round {} but the run is in round {} of {}", step, round + 1,
                round_ + 1, config_.rounds());
  previous_ = UNet(ema_model->config());
  previous_->to(ema_model->parameters().front().device());
  copy_weights(*ema_model, *previous_);
  previous_->eval();
  copy_weights(*ema_model, *model);
  round_ = round;
}

torch::Tensor ProgressiveDistillation::teacher_eps(const torch::Tensor& x, const torch::Tensor& t,
                                                   const torch::Tensor& labels,
                                                   const torch::Tensor& w) {
  const GaussianDiffusion& diffusion = *original_.diffusion;
  if (previous_) {
    return diffusion.predict_eps(
        [&](const torch::Tensor& in, const torch::Tensor& time, const torch::Tensor& y) {
          return previous_->forward(in, time, y, w);
        },
        x, t, labels);
  }
  // Classifier-free guidance with a weight per image, both halves in one call (in calls of at most
  // kCpuForwardBatch on a CPU), and autoguidance against the teacher's guide at config_.w_guide.
  const int64_t chunk = x.device().is_cpu() ? kCpuForwardBatch : 0;
  const auto both = torch::cat({labels, torch::full_like(labels, kNullLabel)});
  const auto out = in_chunks(eps_model(original_.model, original_.diffusion), chunk)(
      torch::cat({x, x}), torch::cat({t, t}), both);
  const auto halves = out.chunk(2, /*dim=*/0);
  auto eps = guided_eps(halves[0], halves[1], w.view({-1, 1, 1, 1}));
  if (config_.w_guide != 0) {
    const TrainedModel& guide = *original_.guide;
    const auto weaker = in_chunks(eps_model(guide.model, guide.diffusion), chunk)(x, t, labels);
    eps = eps + config_.w_guide * (halves[0] - weaker);
  }
  return eps;
}

torch::Tensor ProgressiveDistillation::loss(UNet& model, const torch::Tensor& x0,
                                            const torch::Tensor& labels, const torch::Tensor& t,
                                            const torch::Tensor& noise, at::Generator* generator) {
  const GaussianDiffusion& diffusion = *original_.diffusion;
  const int64_t T = diffusion.T(), n = student_steps(), b = x0.size(0);
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(x0.device());
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat).device(x0.device());
  torch::Tensor k, w;  // [B] grid points in 1..n, [B] guidance weights
  if (generator) {
    k = torch::randint(1, n + 1, {b}, *generator, long_options);
    w = config_.w_min +
        (config_.w_max - config_.w_min) * torch::rand({b}, *generator, float_options);
  } else {  // validation: the trainer's fixed timesteps spread over the grid, five fixed weights
    k = torch::div(t * n, T, /*rounding_mode=*/"floor") + 1;
    w = config_.w_min + (config_.w_max - config_.w_min) *
                            torch::remainder(torch::arange(b, float_options), 5.0) / 4.0;
  }
  const auto t_now = trailing_grid_point(T, n, k);
  const auto t_mid = trailing_grid_point(T, 2 * n, 2 * k - 1);
  const auto t_next = trailing_grid_point(T, n, k - 1);
  const auto z = diffusion.q_sample(x0, t_now, noise);
  const NoiseSchedule& schedule = diffusion.schedule();
  const Denoiser teacher = [&](const torch::Tensor& x, const torch::Tensor& time) {
    return teacher_eps(x, time, labels, w);
  };
  const auto target =
      progressive_distillation_target(schedule, teacher, z, t_now, t_mid, t_next, /*clip_x0=*/true);
  const auto x0_hat = student_x0(model, diffusion, z, t_now, labels, w);
  const auto per_image = (x0_hat - target).pow(2).mean({1, 2, 3});  // [B]
  return (truncated_snr_weight(schedule, t_now) * per_image).mean();
}

void ProgressiveDistillation::save(Checkpoint& checkpoint) const {
  checkpoint.state["round"] = round_;
  checkpoint.state["student_steps"] = student_steps();
  checkpoint.state["teacher_step"] = original_.state.value("step", int64_t{0});
  if (previous_) {
    for (auto& [name, tensor] : module_state(*previous_, kTeacherPrefix)) {
      checkpoint.tensors.emplace(name, tensor);
    }
  }
}

void ProgressiveDistillation::restore(const Checkpoint& checkpoint, const std::string& origin) {
  const auto& state = checkpoint.state;
  NUMERAL_CHECK(state.contains("round") && state.contains("teacher_step"),
                "{}: corrupt student checkpoint: no round or teacher step", origin);
  const int64_t teacher_step = state.at("teacher_step");
  NUMERAL_CHECK(teacher_step == original_.state.value("step", int64_t{0}),
                "{}: the student was distilled from a teacher at step {}, but {} is at step {}; "
                "resume with the original teacher",
                origin, teacher_step, original_.path.string(),
                original_.state.value("step", int64_t{0}));
  const int64_t round = state.at("round");
  NUMERAL_CHECK(round >= 0 && round < config_.rounds(), "{}: corrupt student checkpoint: round {}",
                origin, round);
  round_ = round;
  previous_ = nullptr;
  if (round_ > 0) {
    auto config = original_.config.model;
    config.guidance_input = true;
    UNet previous(config);
    load_module_state(*previous, checkpoint.tensors, kTeacherPrefix, origin);
    previous->to(original_.model->parameters().front().device());
    previous->eval();
    previous_ = previous;
  }
}

}  // namespace numeral
