#include "options.h"

#include <fmt/core.h>

#include <algorithm>
#include <mutex>

namespace numeral::cli {
namespace {

std::map<std::string, std::string>& flags_by_field() {
  static std::map<std::string, std::string> flags;
  return flags;
}

}  // namespace

std::string flag_of(const std::string& field) {
  std::string flag = "--" + field;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

namespace detail {

void remember_flag(const std::string& field, const std::string& flag) {
  flags_by_field()[field] = flag;
}

CLI::Validator rule_validator(const Rule& rule) {
  return CLI::Validator(
      [rule](std::string& text) -> std::string {
        std::vector<std::string> values = {text};
        std::string message;
        try {
          const double v = std::stod(text);
          const std::string expected = rule.check(v);
          if (!expected.empty()) message = fmt::format("{}, got {}", expected, text);
        } catch (const std::exception&) {
          message = fmt::format("expected a number, got {}", text);
        }
        return message;
      },
      "", "");
}

}  // namespace detail

std::string with_flag_names(const FieldError& error) {
  const std::string message = error.what();
  const auto it = flags_by_field().find(error.field());
  if (it == flags_by_field().end() || message.rfind(error.field(), 0) != 0) return message;
  return it->second + message.substr(error.field().size());
}

void add_model_options(CLI::App& c, UNetConfig& m) {
  bind_fields(c, m, {"Model", {}, {"guidance_input"}});
}

void add_diffusion_options(CLI::App& c, DiffusionConfig& d) {
  bind_fields(c, d, {"Diffusion", {{"timesteps", "-T"}}, {}});
}

void add_train_options(CLI::App& c, TrainConfig& t, const std::set<std::string>& skip) {
  bind_fields(c, t, {"Training", {}, skip});
}

void add_distill_options(CLI::App& c, DistillConfig& d) {
  bind_fields(c, d, {"Distillation", {}, {}});
}

void add_sampler_options(CLI::App& c, SamplerOptions& s) {
  bind_fields(c, s, {"Sampler", {}, {}});
}

void add_execution_options(CLI::App& c, ExecutionOptions& e, const std::set<std::string>& skip) {
  bind_fields(c, e, {"Execution", {}, skip});
}

void add_request_options(CLI::App& c, GenerateRequest& r, const std::set<std::string>& skip) {
  FlagBinding binding{
      "Request", {{"classes", "--class,--digit"}, {"per_class", "--per-digit"}}, skip};
  bind_fields(c, r, binding);
  // The defaults come from the model (apply_model_defaults), so --help shows no number.
  for (const auto& [field, flag] : {std::pair<const char*, const char*>{"w", "--w"},
                                    std::pair<const char*, const char*>{"w_guide", "--w-guide"}}) {
    CLI::Option* o = c.get_option_no_throw(flag);
    if (o != nullptr && !skip.count(field)) o->default_str("");
  }
}

}  // namespace numeral::cli
