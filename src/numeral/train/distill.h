#pragma once
// Few-step students distilled from a trained model: progressive distillation (Salimans & Ho 2022)
// with classifier-free guidance distilled in, the weight w a student input (Meng et al. 2023). Each
// round halves the student's DDIM steps on a trailing grid: the student learns to take in one step
// what its teacher (the trained model with guidance in round 1, the previous round's student
// after) takes in two. The Trainer runs it like any training run (run directory, checkpoints,
// exact resume, signals), with this Objective.
#include <torch/torch.h>

#include <memory>

#include "numeral/train/trainer.h"

namespace numeral {

// The student's run configuration: the teacher's model with a guidance input, its diffusion
// process and its data, and the optimisation in `optimisation` (whose data fields are ignored). The
// run is distill.rounds() * distill.round_steps optimiser steps.
RunConfig student_config(const TrainedModel& teacher, const DistillConfig& distill,
                         const TrainConfig& optimisation);

// Checks that `teacher` can be distilled with `distill`: a trained model (not a student) with a
// fixed noise schedule, and a guide when distill.w_guide is not 0. Throws numeral::Error naming
// the file otherwise.
void check_teacher(const TrainedModel& teacher, const DistillConfig& distill);

class ProgressiveDistillation : public Objective {
 public:
  // `teacher` must already be on the training device.
  ProgressiveDistillation(DistillConfig config, TrainedModel teacher);

  std::string checkpoint_kind() const override { return kStudentKind; }
  // The student starts as the teacher: the same weights, the guidance embedding at zero.
  void initialise(UNet& student) override;
  // At a round's first step the teacher becomes the student's EMA, and the student restarts there.
  void begin_step(int64_t step, UNet& model, UNet& ema_model) override;
  // Salimans & Ho's x-space loss with truncated-SNR weights against the two-step teacher target,
  // at a grid point k ~ U{1..N} and a weight w ~ U[w_min, w_max] per image (fixed in validation).
  torch::Tensor loss(UNet& model, const torch::Tensor& x0, const torch::Tensor& labels,
                     const torch::Tensor& t, const torch::Tensor& noise,
                     at::Generator* generator) override;
  int64_t cycle_steps() const override { return config_.round_steps; }
  // state: round, student_steps (what the student samples with now), teacher_step; tensors:
  // "teacher.*", the round's teacher from round 2 on.
  void save(Checkpoint& checkpoint) const override;
  void restore(const Checkpoint& checkpoint, const std::string& origin) override;

  int64_t round() const { return round_; }
  int64_t student_steps() const { return config_.student_steps(round_); }

  // The teacher's predicted noise for (x, t) with labels and per-image weights w ([B]): in round 1
  // the trained model with classifier-free guidance at w, plus config.w_guide (eps(y) -
  // eps_guide(y)) against its bundled guide; later, the previous round's student given w.
  torch::Tensor teacher_eps(const torch::Tensor& x, const torch::Tensor& t,
                            const torch::Tensor& labels, const torch::Tensor& w);

 private:
  DistillConfig config_;
  TrainedModel original_;   // the trained model: round 1's teacher, guided in two halves
  UNet previous_{nullptr};  // the previous round's student: the teacher from round 2 on
  int64_t round_ = 0;       // 0-based
};

}  // namespace numeral
