#pragma once
// The CLI's plumbing: subcommands register themselves; shared option groups are bound once here.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace numeral::cli {

// Adds one subcommand to the app; `order` fixes its place in `numeral --help`.
using CommandSetup = std::function<void(CLI::App& app)>;

// Registers a subcommand at static-initialisation time; returns true so it can initialise a static.
bool register_command(int order, CommandSetup setup);

// Options every compute command shares.
struct RuntimeOptions {
  std::string device = "auto";  // auto, cpu, cuda, cuda:N
  int threads = 0;              // LibTorch intra-op threads; 0 = one per core
};

// Binds --device and --threads to `options`.
void add_runtime_options(CLI::App& command, RuntimeOptions& options);

}  // namespace numeral::cli
