#include "numeral/inference/trained_model.h"

#include <cmath>
#include <map>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/io/checkpoint.h"

namespace numeral {

TrainedModel load_trained_model(const std::filesystem::path& path, torch::Device device, bool ema) {
  TrainedModel m;
  m.path = resolve_checkpoint_path(path);
  const Checkpoint c =
      load_checkpoint(m.path, std::vector<std::string>{kDiffusionKind, kStudentKind});
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
  if (c.state.contains("default_w")) {
    const nlohmann::json& w = c.state.at("default_w");
    NUMERAL_CHECK(w.is_number() && std::isfinite(w.get<double>()),
                  "{}: corrupt checkpoint: default_w {} is not a finite guidance weight",
                  m.path.string(), w.dump());
    m.default_w = w.get<double>();
  }
  if (c.kind == kStudentKind) {
    m.student_steps = c.state.value("student_steps", int64_t{0});
    NUMERAL_CHECK(m.student_steps >= 1 && m.config.model.guidance_input,
                  "{}: corrupt student checkpoint: no sampling steps or no guidance input",
                  m.path.string());
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

TrainedModel export_for_sampling(const std::filesystem::path& from, const std::filesystem::path& to,
                                 const ExportOptions& options) {
  const std::string& dtype = options.dtype;
  const std::map<std::string, torch::ScalarType> kDtypes = {
      {"float32", torch::kFloat}, {"float16", torch::kHalf}, {"bfloat16", torch::kBFloat16}};
  NUMERAL_CHECK(kDtypes.count(dtype), "export dtype {}: expected float32, float16 or bfloat16",
                dtype);
  if (options.default_w) check_rule("default_w", *options.default_w, finite());
  TrainedModel source = load_trained_model(from, torch::kCPU);
  const Checkpoint full =
      load_checkpoint(source.path, std::vector<std::string>{kDiffusionKind, kStudentKind});
  Checkpoint slim;
  slim.kind = full.kind;
  slim.config = full.config;
  slim.state = {{"step", full.state.value("step", 0)},
                {"history", full.state.value("history", nlohmann::json::array())},
                {"exported_from", source.path.string()},
                {"weights_dtype", dtype}};
  for (const char* key :
       {"val_fingerprint", "train_fingerprint", "student_steps", "class_names", "default_w"}) {
    if (full.state.contains(key)) slim.state[key] = full.state[key];
  }
  if (options.default_w) slim.state["default_w"] = *options.default_w;
  for (const auto& [name, tensor] : full.tensors) {
    if (name.rfind("ema.", 0) == 0) {
      const bool weights = tensor.is_floating_point();
      slim.tensors.emplace(name, weights ? tensor.to(kDtypes.at(dtype)) : tensor);
    } else if (name.rfind("schedule.", 0) == 0) {
      slim.tensors.emplace(name, tensor);  // a learned schedule stays in float64
    }
  }
  save_checkpoint(to, slim);
  load_trained_model(to, torch::kCPU);  // the exported file must load for sampling
  return source;
}

ModelFn eps_model(UNet model, std::shared_ptr<GaussianDiffusion> diffusion, double guidance) {
  const bool student = model->config().guidance_input;
  return [model, diffusion, guidance, student](const torch::Tensor& x, const torch::Tensor& t,
                                               const torch::Tensor& y) mutable {
    return diffusion->predict_eps(
        [&](const torch::Tensor& input, const torch::Tensor& time, const torch::Tensor& labels) {
          if (!student) return model->forward(input, time, labels);
          return model->forward(input, time, labels,
                                torch::full({input.size(0)}, guidance, input.options()));
        },
        x, t, y);
  };
}

}  // namespace numeral
