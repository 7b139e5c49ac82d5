// numeral: class-conditional diffusion for small images. Each subcommand lives in its own file
// beside this one and registers itself; main parses, runs, and turns any error into one line.
#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <algorithm>
#include <vector>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "options.h"

namespace numeral::cli {
namespace {

std::vector<std::pair<int, CommandSetup>>& registry() {
  static std::vector<std::pair<int, CommandSetup>> commands;
  return commands;
}

}  // namespace

bool register_command(int order, CommandSetup setup) {
  registry().emplace_back(order, std::move(setup));
  return true;
}

void add_runtime_options(CLI::App& command, RuntimeOptions& options) {
  command.add_option("--device", options.device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str();
  command.add_option("--threads", options.threads, "CPU threads for LibTorch (0 = one per core)")
      ->capture_default_str()
      ->check(between(0, cpu_count()));
}

}  // namespace numeral::cli

int main(int argc, char** argv) {
  numeral::install_signal_handlers();
  CLI::App app{"numeral: class-conditional diffusion for small images (MNIST digits first)",
               "numeral"};
  app.set_version_flag("--version", NUMERAL_VERSION);
  app.require_subcommand(1);
  auto& commands = numeral::cli::registry();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, setup] : commands) setup(app);
  numeral::cli::refuse_negative_unsigned(app);
  try {
    numeral::configure_allocator();  // before the first network call
    numeral::cli::check_arguments(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "numeral: error: {} (see --help)\n", e.what());
    return 2;
  } catch (const numeral::Interrupted& e) {
    fmt::print(stderr, "numeral: stopped by {}: {}\n", numeral::signal_name(e.signal()), e.what());
    return e.exit_code();
  } catch (const numeral::FieldError& e) {  // a library field named by its flag
    fmt::print(stderr, "numeral: error: {}\n", numeral::cli::with_flag_names(e));
    return 1;
  } catch (const numeral::Error& e) {
    fmt::print(stderr, "numeral: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "numeral: error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "numeral: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
