#pragma once
// Helpers every test executable shares: a scratch directory, the message of an expected error,
// and running the CLI binary as a user would.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <thread>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "test_paths.h"

namespace numeral::test {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device entropy;
    path_ = fs::temp_directory_path() /
            fmt::format("numeral_test_{}_{}_{:x}", ::getpid(), counter++, entropy());
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// The message of the numeral::Error that `f` throws, or "" (and a test failure) if it does not.
// A message that spans several lines is a failure too: errors are one line.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-numeral exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected a numeral::Error";
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Expects `statement` to throw a one-line numeral::Error whose message holds every given part.
#define EXPECT_ERROR(statement, ...)                                                   \
  do {                                                                                 \
    const std::string message_ = ::numeral::test::error_of([&] { statement; });        \
    for (const std::string& part_ : std::initializer_list<std::string>{__VA_ARGS__}) { \
      EXPECT_TRUE(::numeral::test::contains(message_, part_))                          \
          << "message '" << message_ << "' lacks '" << part_ << "'";                   \
    }                                                                                  \
  } while (false)

// What one run of the CLI binary did.
struct CliResult {
  int rc = -1;     // exit code; -1 if it did not exit normally
  int signal = 0;  // the signal that ended it, if one did
  std::string out, err;
  int err_lines() const { return static_cast<int>(std::count(err.begin(), err.end(), '\n')); }
};

// Polls `condition` every 20 ms for up to `seconds`; whether it came true.
inline bool wait_until(const std::function<bool()>& condition, double seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A run of the CLI binary in the background (its own process, default signal dispositions), its
// output going to files in `dir` named after `name`; `shell` runs first in the same shell (e.g.
// "ulimit -v 4000000").
class CliProcess {
 public:
  CliProcess(const std::string& args, const fs::path& dir, const std::string& name = "bg",
             const std::string& shell = "")
      : out_(dir / (name + "-stdout.txt")), err_(dir / (name + "-stderr.txt")) {
    const std::string command =
        fmt::format("{}{}exec '{}' {} >'{}' 2>'{}'", shell, shell.empty() ? "" : "; ",
                    NUMERAL_CLI_PATH, args, out_.string(), err_.string());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~CliProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  pid_t pid() const { return pid_; }
  void send(int signal) const { ::kill(pid_, signal); }
  // What it has written to stdout so far.
  std::string out() const {
    std::error_code ec;
    return fs::exists(out_, ec) ? read_file(out_) : "";
  }
  // Waits (up to `seconds`) until its stdout holds `text`.
  bool wait_for_output(const std::string& text, double seconds = 60) const {
    return wait_until([&] { return out().find(text) != std::string::npos; }, seconds);
  }
  // Waits for it to end.
  CliResult wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    CliResult r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r.out = read_file(out_);
    r.err = read_file(err_);
    return r;
  }

 private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Runs `numeral ARGS` through the shell, capturing stdout and stderr into files under `dir`.
inline CliResult run_cli(const std::string& args, const fs::path& dir) {
  const fs::path out = dir / "cli-stdout.txt", err = dir / "cli-stderr.txt";
  const std::string command =
      fmt::format("'{}' {} >'{}' 2>'{}'", NUMERAL_CLI_PATH, args, out.string(), err.string());
  const int status = std::system(command.c_str());
  CliResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

// The same, in a scratch directory of its own.
inline CliResult run_cli(const std::string& args) {
  const TempDir scratch;
  return run_cli(args, scratch.path());
}

// Skips the test when the CLI binary is not built (a test-only build).
#define SKIP_WITHOUT_CLI()                                 \
  do {                                                     \
    if (!::numeral::fs::exists(NUMERAL_CLI_PATH))          \
      GTEST_SKIP() << NUMERAL_CLI_PATH << " is not built"; \
  } while (false)

}  // namespace numeral::test
