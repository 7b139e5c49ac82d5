#pragma once
// A trained model as the inference API uses it: the EMA weights, the configs and the schedule, read
// from a checkpoint (a file or a run directory). Nothing here depends on training.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "numeral/diffusion/gaussian_diffusion.h"
#include "numeral/inference/request.h"
#include "numeral/inference/run_config.h"
#include "numeral/model/unet.h"

namespace numeral {

// The checkpoint kinds of a trained diffusion model and of a distilled student (train/distill.h).
constexpr const char* kDiffusionKind = "diffusion";
constexpr const char* kStudentKind = "student";

// A trained diffusion model loaded for sampling: the EMA weights and the configs.
struct TrainedModel {
  RunConfig config;
  UNet model{nullptr};  // EMA weights, eval mode, on the device
  std::shared_ptr<GaussianDiffusion> diffusion;
  nlohmann::json state = nlohmann::json::object();  // step, history, ...
  std::filesystem::path path;
  int64_t student_steps = 0;  // a distilled student's sampling steps; 0 for a trained model
  // The guidance weight a request gets when it names none: the file's own (state "default_w",
  // written by `numeral model export --default-w`, chosen by `numeral eval sweep` for that model),
  // else kDefaultGuidance.
  double default_w = kDefaultGuidance;
  // Its classes' names, in label order: from its data (stored in the checkpoint), or
  // default_class_names for a file from before names were stored.
  std::vector<std::string> class_names;
  // Autoguidance's weaker model (diffusion/guidance.h): a request's w_guide guides away from it,
  // beside classifier-free guidance's w. The one bundled in the file (`numeral model export
  // --guide`; its path is the file's with "#guide" appended) unless attach_guide (`--guide`)
  // replaced it; none for most files.
  std::shared_ptr<const TrainedModel> guide;
  // The autoguidance weight a request gets when it names none: the file's own (state
  // "default_w_guide", written with a bundled guide by `numeral model export --default-w-guide`),
  // else 0 (no autoguidance).
  double default_w_guide = 0;
};

// Loads a diffusion checkpoint or a distilled student's (a file or a run directory) onto `device`.
// Use ema=false for the raw (non-averaged) weights.
TrainedModel load_trained_model(const std::filesystem::path& path, torch::Device device,
                                bool ema = true);

// Makes `guide` the model that `model` is guided against (autoguidance): a trained diffusion model,
// not a distilled student, with the same image shape, classes and noise schedule, on the same
// device. Throws one line naming what differs.
void attach_guide(TrainedModel& model, TrainedModel guide);

// How `numeral model export` writes its copy.
struct ExportOptions {
  std::string dtype = "float32";    // the weights as float32, float16 or bfloat16
  std::optional<double> default_w;  // the copy's default guidance weight; none: the source's
  // Autoguidance's weaker model to bundle (a checkpoint or run directory that attach_guide
  // accepts); empty: the source's own bundled guide, if it has one.
  std::filesystem::path guide;
  std::optional<double> default_w_guide;  // the copy's default w_guide; none: the source's, else 0
};

// Writes a sampling-only copy of a diffusion checkpoint to `to`: the EMA weights (as
// options.dtype), a learned schedule, the config, the step, the history, the data fingerprints and
// the default guidance weights; no raw weights, optimiser or RNG state (about a quarter of a
// checkpoint in float32). With a guide (options.guide, or one the source bundles) the copy carries
// the guide's sampling weights too (tensors "guide.*", its config and fingerprints under the
// state's "guide"), so that one file samples with autoguidance. Checks everything before writing
// (nothing is written on a refusal) and that the copy loads; returns the copy as loaded (CPU).
TrainedModel export_for_sampling(const std::filesystem::path& from, const std::filesystem::path& to,
                                 const ExportOptions& options = {});

// A ModelFn returning predicted noise from a model, whatever it was trained to predict. A student
// (config.guidance_input) is given the guidance weight `guidance` on every call; a trained model
// ignores it (guidance is then classifier_free_guidance's job). With Precision::bfloat16 the
// network runs in bfloat16 (its input rounded, its output taken back to x's type before the
// prediction is turned into noise); without autograd only.
ModelFn eps_model(UNet model, std::shared_ptr<GaussianDiffusion> diffusion, double guidance = 0,
                  Precision precision = Precision::float32);

}  // namespace numeral
