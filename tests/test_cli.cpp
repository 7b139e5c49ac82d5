// The command line itself (apps/numeral): what it refuses before any command runs, in one line and
// with exit code 2.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

// Runs `args` and expects a parse error: exit code 2, one line on stderr holding every `part`.
void expect_usage_error(const std::string& args, const std::vector<std::string>& parts) {
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
  EXPECT_EQ(r.err_lines(), 1) << args << "\n" << r.err;
  for (const auto& part : parts) {
    EXPECT_NE(r.err.find(part), std::string::npos) << args << "\n" << r.err;
  }
}

TEST(Cli, UnknownCommandsAreNamedWithTheClosestOne) {
  SKIP_WITHOUT_CLI();
  expect_usage_error("smaple", {"unknown command 'smaple'", "did you mean 'sample'?"});
  expect_usage_error("trian --epochs 1", {"unknown command 'trian'", "'train'"});
  expect_usage_error("data gte mnist", {"unknown command 'data gte'", "'data get'"});
  expect_usage_error("eval swep", {"unknown command 'eval swep'", "'eval sweep'"});
  expect_usage_error("xyzzy", {"unknown command 'xyzzy'", "expected one of:", "sample", "train"});
}

TEST(Cli, AnOptionGivenTwiceIsRefused) {
  SKIP_WITHOUT_CLI();
  // CLI11 appended a repeated list to the first: 8,8,16 then 32 made a 4-level U-Net.
  expect_usage_error("model summary --channels 8,8,16 --channels 32",
                     {"--channels given more than once", "1,4,7"});
  expect_usage_error("sample --checkpoint x --digit 1 --digit 2", {"--digit given more than once"});
  expect_usage_error("sample --checkpoint x --per-digit 1 --per-digit=2",
                     {"--per-digit given more than once"});
  expect_usage_error("sample --checkpoint x --unconditional --unconditional",
                     {"--unconditional given more than once"});
  expect_usage_error("train -T 10 --timesteps 20", {"given more than once"});
  // A value that looks like a flag is the value of the flag before it, not a repeat.
  const CliResult r = run_cli("model summary --channels 8,16 --groups 4 --time-embed-dim 16");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(Cli, RangesArePrintedAsIntegers) {
  SKIP_WITHOUT_CLI();
  expect_usage_error("sample --checkpoint x --per-digit 0",
                     {"--per-class: expected at least 1, got 0"});
  expect_usage_error("sample --checkpoint x --scale 17",
                     {"--scale: expected an integer from 1 to 16, got 17"});
  expect_usage_error("sweep --checkpoint x --per-digit 33", {"from 1 to 32, got 33"});
  expect_usage_error("sample --checkpoint x --forward-batch -1",
                     {"--forward-batch: expected at least 0, got -1"});
}

TEST(Cli, NegativeValuesOfUnsignedOptionsAreRefused) {
  SKIP_WITHOUT_CLI();
  // CLI11 wrapped -1 around to 18446744073709551615.
  for (const std::string args :
       {"sample --checkpoint x --seed -1", "train --split-seed -5", "noise --seed=-1"}) {
    expect_usage_error(args, {"expected an integer from 0 to 18446744073709551615"});
  }
}

TEST(Cli, ThreadsAreBoundedByTheCpus) {
  SKIP_WITHOUT_CLI();
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  expect_usage_error(
      "info --threads 100000",
      {fmt::format("--threads: expected an integer from 0 to {}, got 100000", cpus)});
  const CliResult r = run_cli(fmt::format("info --threads {}", cpus));
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace
}  // namespace numeral
