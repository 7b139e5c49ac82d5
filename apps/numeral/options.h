#pragma once
// The CLI's side of the field definitions (common/fields.h): each config's fields become flags with
// the same names (dashes for underscores), defaults, help texts and rules, from the one list.
#include <CLI/CLI.hpp>
#include <map>
#include <set>
#include <string>

#include "numeral/common/fields.h"
#include "numeral/inference/request.h"
#include "numeral/inference/run_config.h"
#include "numeral/model/config.h"

namespace numeral::cli {

// "--per-class" for the field "per_class".
std::string flag_of(const std::string& field);

// How a config's fields become flags.
struct FlagBinding {
  std::string group;                               // the --help section
  std::map<std::string, std::string> extra_names;  // field -> more names: {"classes", "--digit"}
  std::set<std::string> skip;                      // fields that are not flags here
};

// Rewrites a FieldError's leading field name into its flag: "steps 0: ..." -> "--steps 0: ...".
std::string with_flag_names(const FieldError& error);

namespace detail {
// CLI11 prefixes the flag: "--steps: expected at least 1, got 0".
CLI::Validator rule_validator(const Rule& rule);
void remember_flag(const std::string& field, const std::string& flag);
}  // namespace detail

// Adds one flag per field of `config` to `command`, bound to the field. Booleans that default to
// false are --name switches; those that default to true are --no-name switches; enums take their
// names; numbers are checked by the field's rule as they are parsed.
template <class C>
void bind_fields(CLI::App& command, C& config, const FlagBinding& binding = {}) {
  auto bind = [&](const char* name, auto& member, const char* help, const Rule& rule = {}) {
    using T = std::decay_t<decltype(member)>;
    if (binding.skip.count(name)) return;
    std::string flag = flag_of(name);
    detail::remember_flag(name, flag);
    std::string names = flag;
    if (const auto it = binding.extra_names.find(name); it != binding.extra_names.end()) {
      names += "," + it->second;
    }
    CLI::Option* option = nullptr;
    if constexpr (std::is_same_v<T, bool>) {
      if (member) {
        names = "!--no-" + flag.substr(2);
        detail::remember_flag(name, "--no-" + flag.substr(2));
        option = command.add_flag(names, member, std::string("turn off: ") + help);
      } else {
        option = command.add_flag(names, member, help);
      }
    } else if constexpr (kNamedEnum<T>) {
      option =
          command
              .add_option_function<std::string>(
                  names,
                  [&member, name](const std::string& text) { member = parse_enum<T>(text, name); },
                  std::string(help) + " (" + enum_choices<T>() + ")")
              ->default_str(to_string(member));
    } else {
      option = command.add_option(names, member, help)->capture_default_str();
      if constexpr (std::is_same_v<T, std::vector<int64_t>>) option->delimiter(',');
      if (rule) option->check(detail::rule_validator(rule));
    }
    if (!binding.group.empty()) option->group(binding.group);
  };
  describe(config, bind);
}

// The groups every command shares, bound from their definitions.
void add_model_options(CLI::App& command, UNetConfig& config);
void add_diffusion_options(CLI::App& command, DiffusionConfig& config);
void add_train_options(CLI::App& command, TrainConfig& config,
                       const std::set<std::string>& skip = {});
void add_distill_options(CLI::App& command, DistillConfig& config);
void add_sampler_options(CLI::App& command, SamplerOptions& options);
void add_execution_options(CLI::App& command, ExecutionOptions& options,
                           const std::set<std::string>& skip = {});
// A generation request: --classes (alias --digit), --per-class (alias --per-digit), --w, --seed,
// --unconditional and the sampler; `skip` leaves out fields a command sets itself.
void add_request_options(CLI::App& command, GenerateRequest& request,
                         const std::set<std::string>& skip = {});

}  // namespace numeral::cli
