#pragma once
// The CLI's plumbing: subcommands register themselves; shared option groups are bound once here.
#include <CLI/CLI.hpp>
#include <cstdint>
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

// Integer validators whose messages print integers ("--per-digit: expected an integer of at least
// 1, got 0"), unlike CLI11's, which print doubles.
CLI::Validator at_least(int64_t min);
CLI::Validator between(int64_t min, int64_t max);

// What CLI11 would accept silently or word poorly, checked on the raw arguments before it parses:
// an unknown subcommand (named, with the closest known one) and an option given more than once
// (CLI11 appends a repeated list option to the first). Throws CLI::ValidationError.
void check_arguments(const CLI::App& app, int argc, const char* const* argv);

// Makes every unsigned option of `app` and its subcommands refuse a negative value, which CLI11
// would otherwise wrap around (--seed -1 became 18446744073709551615).
void refuse_negative_unsigned(CLI::App& app);

}  // namespace numeral::cli
