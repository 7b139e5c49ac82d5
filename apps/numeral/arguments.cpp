// Argument checks CLI11 does not make, or words poorly: unknown subcommands with a suggestion,
// repeated options, integer ranges printed as integers, negative values for unsigned options.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <vector>

#include "numeral/cli.h"

namespace numeral::cli {
namespace {

// Parses a whole string as a base-10 integer.
bool parse_integer(const std::string& text, int64_t& value) {
  const char* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && ptr == end;
}

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_command_message(const CLI::App& parent, const std::string& prefix,
                                    const std::string& token) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, token.size() / 3) + 1;
  std::vector<std::string> names;
  for (const CLI::App* sub : parent.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
    const size_t d = edit_distance(token, sub->get_name());
    if (d < best_distance) best_distance = d, best = sub->get_name();
  }
  if (!best.empty()) {
    return fmt::format("unknown command '{}{}'; did you mean '{}{}'?", prefix, token, prefix, best);
  }
  return fmt::format("unknown command '{}{}'; expected one of: {}", prefix, token,
                     fmt::join(names, ", "));
}

}  // namespace

CLI::Validator at_least(int64_t min) {
  return CLI::Validator(
      [min](std::string& text) -> std::string {
        int64_t value = 0;
        if (!parse_integer(text, value) || value >= min) return "";  // CLI11 reports non-integers
        return fmt::format("expected an integer of at least {}, got {}", min, text);
      },
      fmt::format(">= {}", min));
}

CLI::Validator between(int64_t min, int64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        int64_t value = 0;
        if (!parse_integer(text, value) || (value >= min && value <= max)) return "";
        return fmt::format("expected an integer from {} to {}, got {}", min, max, text);
      },
      fmt::format("{} to {}", min, max));
}

void check_arguments(const CLI::App& app, int argc, const char* const* argv) {
  const CLI::App* command = &app;
  std::string path;  // the subcommands so far, e.g. "data "
  std::map<const CLI::Option*, int> seen;
  for (int i = 1; i < argc; ++i) {
    const std::string token = argv[i];
    if (token == "--") break;
    if (token.size() > 1 && token[0] == '-') {
      const std::string name = token.substr(0, token.find('='));
      const CLI::Option* option = command->get_option_no_throw(name);
      if (option == nullptr) continue;  // CLI11 names unknown options itself
      if (++seen[option] == 2) {
        const std::string example =
            option->get_items_expected_max() > 1 ? " (a list as one value: 1,4,7)" : "";
        throw CLI::ValidationError(
            fmt::format("{} given more than once; give it once{}", name, example));
      }
      if (option->get_expected_min() > 0 && token.find('=') == std::string::npos) ++i;  // value
      continue;
    }
    const auto subcommands = command->get_subcommands([](const CLI::App*) { return true; });
    if (subcommands.empty()) continue;  // a positional argument
    const auto next = std::find_if(subcommands.begin(), subcommands.end(),
                                   [&](const CLI::App* sub) { return sub->check_name(token); });
    if (next == subcommands.end()) {
      // A command with subcommands and no positional arguments has only a mistyped one to offer.
      const bool takes_positionals =
          !command->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
      if (command->get_require_subcommand_min() == 0 && takes_positionals) continue;
      throw CLI::ValidationError(unknown_command_message(*command, path, token));
    }
    command = *next;
    path += token + " ";
    seen.clear();
  }
}

void refuse_negative_unsigned(CLI::App& app) {
  static const CLI::Validator kNonNegative(
      [](std::string& text) -> std::string {
        if (text.empty() || text[0] != '-') return "";
        return fmt::format("expected an integer from 0 to 18446744073709551615, got {}", text);
      },
      "");
  for (CLI::Option* option : app.get_options()) {
    if (option->get_type_name().rfind("UINT", 0) == 0) option->check(kNonNegative);
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    refuse_negative_unsigned(*sub);
  }
}

}  // namespace numeral::cli
