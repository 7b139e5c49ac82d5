#pragma once
// Noise schedules and the diffusion process's named, precomputed coefficients (as in DDPM,
// Ho et al. 2020, and improved DDPM, Nichol & Dhariwal 2021).
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "numeral/common/fields.h"

namespace numeral {

enum class Schedule { cosine, linear, linear_textbook, learned };
NUMERAL_ENUM_NAMES(Schedule, {Schedule::cosine, "cosine"}, {Schedule::linear, "linear"},
                   {Schedule::linear_textbook, "linear-textbook"}, {Schedule::learned, "learned"});
enum class Prediction { eps, v, edm };
NUMERAL_ENUM_NAMES(Prediction, {Prediction::eps, "eps"}, {Prediction::v, "v"},
                   {Prediction::edm, "edm"});

// How the forward process is configured; stored in every checkpoint. Fields in describe() below.
struct DiffusionConfig {
  int64_t timesteps = 100;
  Schedule schedule = Schedule::cosine;
  double cosine_s = 0.008;
  bool zero_terminal_snr = false;
  Prediction prediction = Prediction::eps;
  double min_snr_gamma = 0.0;
  double sigma_data = 0.5;

  // Throws FieldError naming the field when a value or the combination is invalid.
  void validate() const;
};

template <class V>
void describe(DiffusionConfig& d, V& v) {
  v("timesteps", d.timesteps, "diffusion steps T", at_least(2));
  v("schedule", d.schedule,
    "cosine, linear (rescaled to T), linear-textbook, or learned (starts as cosine; its shape is "
    "trained to minimise the variance of the VLB, as in VDM)");
  v("cosine_s", d.cosine_s, "cosine offset s (Nichol & Dhariwal eq. 17)", above(0));
  v("zero_terminal_snr", d.zero_terminal_snr,
    "rescale the schedule so abar_T = 0 (Lin et al. 2023; needs prediction v)");
  v("prediction", d.prediction,
    "what the network predicts: eps, v, or edm (EDM's preconditioned F)");
  v("min_snr_gamma", d.min_snr_gamma, "Min-SNR-gamma loss weighting (Hang et al. 2023; 0 = off)",
    at_least(0));
  v("sigma_data", d.sigma_data, "EDM's sigma_data (Karras et al. 2022), for prediction edm",
    above(0));
}

void to_json(nlohmann::json& j, const DiffusionConfig& c);
void from_json(const nlohmann::json& j, DiffusionConfig& c);

// betas for the named schedule. "linear" is DDPM's 1e-4..0.02 rescaled by 1000/T (Nichol &
// Dhariwal sec. 3.2) so that x_T is noise for any T; "linear-textbook" is 1e-4..0.02 unscaled,
// which for T = 100 leaves abar_T = 0.36 (x_T still mostly image); "cosine" is eq. 17, betas
// clipped at 0.999. A "learned" schedule starts as the cosine one (learned_schedule.h).
torch::Tensor make_betas(const DiffusionConfig& config);  // [T] float64

// Rescales betas so that sqrt(abar) goes linearly to exactly 0 at T while keeping sqrt(abar_1)
// (Lin et al. 2023, Algorithm 1).
torch::Tensor rescale_zero_terminal_snr(const torch::Tensor& betas);  // [T] float64

// The schedule's coefficients, indexed by t in [0, T): t = 0 is the first noising step (x_1 in the
// paper). Computed in float64 on the CPU; kept as float32 on the model's device for use.
struct NoiseSchedule {
  int64_t T = 0;
  torch::Tensor betas;                           // beta_t
  torch::Tensor alphas;                          // 1 - beta_t
  torch::Tensor alphas_cumprod;                  // abar_t
  torch::Tensor alphas_cumprod_prev;             // abar_{t-1}, with abar_{-1} = 1
  torch::Tensor sqrt_alphas_cumprod;             // sqrt(abar_t)
  torch::Tensor sqrt_one_minus_alphas_cumprod;   // sqrt(1 - abar_t)
  torch::Tensor posterior_variance;              // beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
  torch::Tensor posterior_log_variance_clipped;  // log beta~_t, with beta~_0 replaced by beta~_1
  torch::Tensor posterior_mean_coef1;            // coefficient of x_0 in mu~_t (DDPM eq. 7)
  torch::Tensor posterior_mean_coef2;            // coefficient of x_t in mu~_t

  // Builds every coefficient from the config, as float64 on the CPU.
  static NoiseSchedule from_config(const DiffusionConfig& config);
  // Builds every coefficient from betas ([T] float64).
  static NoiseSchedule from_betas(const torch::Tensor& betas);
  // Builds every coefficient from abar ([T], decreasing in (0, 1]), as float64 on the CPU.
  static NoiseSchedule from_alphas_cumprod(const torch::Tensor& alphas_cumprod);
  // A copy with every coefficient as float32 on `device`.
  NoiseSchedule to(torch::Device device) const;
  // log(abar_t / (1 - abar_t)): the signal-to-noise ratio in log space.
  torch::Tensor log_snr() const;  // [T]
};

// Gathers coefficient[t] for each sample and shapes it to broadcast over images.
torch::Tensor extract(const torch::Tensor& coefficient, const torch::Tensor& t);  // -> [B,1,1,1]

}  // namespace numeral
