#include "numeral/inference/trained_model.h"

#include <cmath>
#include <map>
#include <optional>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/io/checkpoint.h"

namespace numeral {

namespace {

// A bundled guide: its config and state under this state key, its tensors under this prefix.
constexpr const char* kGuideKey = "guide";
constexpr const char* kGuidePrefix = "guide.";

// A finite number stored under `key` in a checkpoint's state, or `fallback` when it is absent.
double stored_weight(const nlohmann::json& state, const char* key, double fallback,
                     const std::string& origin) {
  if (!state.contains(key)) return fallback;
  const nlohmann::json& w = state.at(key);
  NUMERAL_CHECK(w.is_number() && std::isfinite(w.get<double>()),
                "{}: corrupt checkpoint: {} {} is not a finite guidance weight", origin, key,
                w.dump());
  return w.get<double>();
}

// The model stored in `c`, read from `path` (the name messages and reports give it).
TrainedModel model_of(const Checkpoint& c, const std::filesystem::path& path, torch::Device device,
                      bool ema) {
  TrainedModel m;
  m.path = path;
  try {
    m.config = c.config.get<RunConfig>();
    m.config.model.validate();
    m.config.diffusion.validate();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt checkpoint config: {}", m.path.string(), e.what());
  }
  m.model = UNet(m.config.model);
  load_module_state(*m.model, c.tensors, ema ? "ema." : "model.", m.path.string());
  m.model->to(device);
  m.model->eval();
  m.diffusion = std::make_shared<GaussianDiffusion>(m.config.diffusion, device);
  m.diffusion->load_schedule_state(c.tensors, m.path.string());
  m.state = c.state;
  m.class_names = default_class_names(m.config.train.data, m.config.model.num_classes);
  if (c.state.contains("class_names")) {
    try {
      auto names = c.state.at("class_names").get<std::vector<std::string>>();
      // A model may have more outputs than its data had classes: name the rest by index.
      for (size_t i = 0; i < names.size() && i < m.class_names.size(); ++i)
        m.class_names[i] = names[i];
    } catch (const nlohmann::json::exception&) {
      fail("{}: corrupt checkpoint: class_names is not a list of strings", m.path.string());
    }
  }
  m.default_w = stored_weight(c.state, "default_w", kDefaultGuidance, m.path.string());
  if (c.kind == kStudentKind) {
    m.student_steps = c.state.value("student_steps", int64_t{0});
    NUMERAL_CHECK(m.student_steps >= 1 && m.config.model.guidance_input,
                  "{}: corrupt student checkpoint: no sampling steps or no guidance input",
                  m.path.string());
  }
  return m;
}

// The guide bundled in `c` as a checkpoint of its own (its tensors without the "guide." prefix).
Checkpoint bundled_guide(const Checkpoint& c, const std::string& origin) {
  const nlohmann::json& b = c.state.at(kGuideKey);
  NUMERAL_CHECK(b.is_object() && b.contains("config") && b.contains("state"),
                "{}: corrupt checkpoint: its bundled guide has no config or state", origin);
  Checkpoint g;
  g.kind = kDiffusionKind;
  g.config = b.at("config");
  g.state = b.at("state");
  const std::string prefix = kGuidePrefix;
  for (const auto& [name, tensor] : c.tensors) {
    if (name.rfind(prefix, 0) == 0) g.tensors.emplace(name.substr(prefix.size()), tensor);
  }
  return g;
}

}  // namespace

TrainedModel load_trained_model(const std::filesystem::path& path, torch::Device device, bool ema) {
  const std::filesystem::path file = resolve_checkpoint_path(path);
  const Checkpoint c =
      load_checkpoint(file, std::vector<std::string>{kDiffusionKind, kStudentKind});
  TrainedModel m = model_of(c, file, device, ema);
  if (c.state.contains(kGuideKey)) {
    const std::string name = file.string() + "#guide";
    attach_guide(m, model_of(bundled_guide(c, file.string()), name, device, /*ema=*/true));
    m.default_w_guide = stored_weight(c.state, "default_w_guide", 0, file.string());
  } else {
    NUMERAL_CHECK(!c.state.contains("default_w_guide"),
                  "{}: corrupt checkpoint: a default w_guide but no bundled guide", file.string());
  }
  return m;
}

void attach_guide(TrainedModel& model, TrainedModel guide) {
  const std::string g = guide.path.string();
  NUMERAL_CHECK(model.student_steps == 0,
                "{}: a distilled student takes w as an input and cannot be autoguided; guide its "
                "teacher instead",
                model.path.string());
  NUMERAL_CHECK(guide.student_steps == 0,
                "guide {}: is a distilled student; autoguidance needs a trained diffusion model",
                g);
  const UNetConfig &a = model.config.model, &b = guide.config.model;
  NUMERAL_CHECK(a.image_size == b.image_size && a.image_channels == b.image_channels &&
                    a.num_classes == b.num_classes,
                "guide {}: makes {}x{}x{} images of {} classes, the model {}x{}x{} of {}", g,
                b.image_channels, b.image_size, b.image_size, b.num_classes, a.image_channels,
                a.image_size, a.image_size, a.num_classes);
  const auto& sa = model.diffusion->schedule_f64().alphas_cumprod;
  const auto& sb = guide.diffusion->schedule_f64().alphas_cumprod;
  NUMERAL_CHECK(sa.size(0) == sb.size(0) && torch::allclose(sa.cpu(), sb.cpu(), 0, 1e-9),
                "guide {}: its noise schedule ({} steps) is not the model's ({} steps); "
                "autoguidance needs the same one",
                g, sb.size(0), sa.size(0));
  const auto device = model.model->parameters().front().device();
  NUMERAL_CHECK(guide.model->parameters().front().device() == device,
                "guide {}: is on {}, the model on {}", g,
                guide.model->parameters().front().device().str(), device.str());
  guide.guide = nullptr;
  model.guide = std::make_shared<const TrainedModel>(std::move(guide));
}

namespace {

// The part of a diffusion checkpoint that sampling needs: the EMA weights as `dtype`, a learned
// schedule (in float64), the config and the state that describes the model. "exported_from" names
// the run the weights came from: `exported_from` for a training checkpoint, the source's own for a
// copy of a copy.
Checkpoint sampling_copy(const Checkpoint& full, const std::string& exported_from,
                         const std::string& dtype) {
  const std::map<std::string, torch::ScalarType> kDtypes = {
      {"float32", torch::kFloat}, {"float16", torch::kHalf}, {"bfloat16", torch::kBFloat16}};
  NUMERAL_CHECK(kDtypes.count(dtype), "export dtype {}: expected float32, float16 or bfloat16",
                dtype);
  Checkpoint slim;
  slim.kind = full.kind;
  slim.config = full.config;
  slim.state = {{"step", full.state.value("step", 0)},
                {"history", full.state.value("history", nlohmann::json::array())},
                {"exported_from", full.state.value("exported_from", exported_from)},
                {"weights_dtype", dtype}};
  for (const char* key :
       {"val_fingerprint", "train_fingerprint", "student_steps", "class_names", "default_w"}) {
    if (full.state.contains(key)) slim.state[key] = full.state[key];
  }
  for (const auto& [name, tensor] : full.tensors) {
    if (name.rfind("ema.", 0) == 0) {
      const bool weights = tensor.is_floating_point();
      slim.tensors.emplace(name, weights ? tensor.to(kDtypes.at(dtype)) : tensor);
    } else if (name.rfind("schedule.", 0) == 0) {
      slim.tensors.emplace(name, tensor);
    }
  }
  return slim;
}

}  // namespace

TrainedModel export_for_sampling(const std::filesystem::path& from, const std::filesystem::path& to,
                                 const ExportOptions& options) {
  const std::string& dtype = options.dtype;
  if (options.default_w) check_rule("default_w", *options.default_w, finite());
  if (options.default_w_guide) check_rule("default_w_guide", *options.default_w_guide, finite());
  TrainedModel source = load_trained_model(from, torch::kCPU);
  const Checkpoint full =
      load_checkpoint(source.path, std::vector<std::string>{kDiffusionKind, kStudentKind});
  Checkpoint slim = sampling_copy(full, source.path.string(), dtype);
  if (options.default_w) slim.state["default_w"] = *options.default_w;
  // The guide: the one asked for (checked against the source by attach_guide), else the source's
  // own with its default weight.
  std::optional<Checkpoint> guide;
  std::optional<double> default_w_guide = options.default_w_guide;
  if (!options.guide.empty()) {
    attach_guide(source, load_trained_model(options.guide, torch::kCPU));
    guide = sampling_copy(load_checkpoint(source.guide->path, kDiffusionKind),
                          source.guide->path.string(), dtype);
  } else if (full.state.contains(kGuideKey)) {
    const Checkpoint bundled = bundled_guide(full, source.path.string());
    guide = sampling_copy(bundled, source.guide->path.string(), dtype);
    if (!default_w_guide && full.state.contains("default_w_guide"))
      default_w_guide = source.default_w_guide;
  }
  if (default_w_guide) {
    NUMERAL_CHECK(guide.has_value(),
                  "default_w_guide {}: the copy has no guide to apply it against (--guide)",
                  *default_w_guide);
    slim.state["default_w_guide"] = *default_w_guide;
  }
  if (guide) {
    slim.state[kGuideKey] = {{"config", guide->config}, {"state", guide->state}};
    for (const auto& [name, tensor] : guide->tensors)
      slim.tensors.emplace(kGuidePrefix + name, tensor);
  }
  save_checkpoint(to, slim);
  return load_trained_model(to, torch::kCPU);  // the exported file must load for sampling
}

ModelFn eps_model(UNet model, std::shared_ptr<GaussianDiffusion> diffusion, double guidance,
                  Precision precision) {
  const auto network = precision == Precision::bfloat16 ? torch::kBFloat16 : torch::kFloat;
  const bool student = model->config().guidance_input;
  return [model, diffusion, guidance, student, network](
             const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) mutable {
    return diffusion->predict_eps(
        [&](const torch::Tensor& input, const torch::Tensor& time, const torch::Tensor& labels) {
          const auto in = input.to(network);
          const auto w =
              student ? torch::full({input.size(0)}, guidance, input.options()) : torch::Tensor{};
          return model->forward(in, time, labels, w).to(input.scalar_type());
        },
        x, t, y);
  };
}

}  // namespace numeral
