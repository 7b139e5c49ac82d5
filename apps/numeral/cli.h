#pragma once
// The CLI's plumbing: subcommands register themselves; shared option groups are bound once here.
#include <CLI/CLI.hpp>
#include <atomic>
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

// While alive, Ctrl-C sets a flag instead of killing the process (a second Ctrl-C kills it), so
// long commands can checkpoint or clean up; the flag starts false.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  // The flag Ctrl-C sets.
  const std::atomic<bool>& flag() const;
  bool requested() const { return flag().load(); }
};

}  // namespace numeral::cli
