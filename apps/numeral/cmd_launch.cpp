// `numeral launch`: starts the local processes of a data-parallel `numeral train` with torchrun's
// variables set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
// prefixes each one's output with its rank, forwards SIGINT and SIGTERM, stops the rest when one
// fails, and exits with the group's exit code.
#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/signals.h"

namespace numeral::cli {
namespace {

struct LaunchCommand {
  int64_t nproc = 1;
  int64_t nnodes = 1;
  int64_t node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  double grace_s = 30;
  std::vector<std::string> args;  // the numeral command each process runs: train ...
};

// One rank's process and the lines it has written but not yet ended.
struct Rank {
  int64_t rank = 0;
  pid_t pid = -1;
  std::array<int, 2> fds{-1, -1};  // its stdout, its stderr (read ends); -1 once closed
  std::array<std::string, 2> partial;
  bool exited = false;
  int exit_code = 0;
};

std::string self_executable() {
  std::vector<char> buffer(4096);
  const ssize_t n = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  NUMERAL_CHECK(n > 0, "launch: cannot find numeral's own executable (/proc/self/exe)");
  return std::string(buffer.data(), static_cast<size_t>(n));
}

// Starts one rank: its own process group (a terminal's Ctrl-C reaches the launcher alone, which
// forwards it once), killed if the launcher dies, its output into two pipes.
Rank start_rank(const LaunchCommand& cmd, const std::string& exe, int64_t local_rank) {
  Rank r;
  r.rank = cmd.node_rank * cmd.nproc + local_rank;
  int out[2], err[2];
  NUMERAL_CHECK(::pipe(out) == 0 && ::pipe(err) == 0, "launch: pipe failed: {}",
                std::strerror(errno));
  std::vector<std::string> env = {
      fmt::format("RANK={}", r.rank),
      fmt::format("WORLD_SIZE={}", cmd.nproc * cmd.nnodes),
      fmt::format("LOCAL_RANK={}", local_rank),
      fmt::format("LOCAL_WORLD_SIZE={}", cmd.nproc),
      fmt::format("MASTER_ADDR={}", cmd.master_addr),
      fmt::format("MASTER_PORT={}", cmd.master_port),
  };
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : cmd.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  r.pid = ::fork();
  NUMERAL_CHECK(r.pid >= 0, "launch: fork failed: {}", std::strerror(errno));
  if (r.pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    ::execv(exe.c_str(), argv.data());
    std::fprintf(stderr, "numeral: error: launch: cannot run %s: %s\n", exe.c_str(),
                 std::strerror(errno));
    std::_Exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  r.fds = {out[0], err[0]};
  return r;
}

// Writes the complete lines of `text` (and, at the end, the rest) with the rank in front.
void relay(Rank& r, int stream, const char* data, size_t size, bool flush_rest) {
  std::string& pending = r.partial[stream];
  pending.append(data, size);
  FILE* to = stream == 0 ? stdout : stderr;
  size_t start = 0;
  for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
    fmt::print(to, "[rank {}] {}\n", r.rank, std::string_view(pending).substr(start, end - start));
  }
  pending.erase(0, start);
  if (flush_rest && !pending.empty()) {
    fmt::print(to, "[rank {}] {}\n", r.rank, pending);
    pending.clear();
  }
  std::fflush(to);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void signal_all(std::vector<Rank>& ranks, int signal) {
  for (auto& r : ranks) {
    if (!r.exited) ::kill(r.pid, signal);
  }
}

void run(const LaunchCommand& cmd) {
  NUMERAL_CHECK(cmd.node_rank < cmd.nnodes, "--node-rank {}: expected 0 to {} (--nnodes {})",
                cmd.node_rank, cmd.nnodes - 1, cmd.nnodes);
  NUMERAL_CHECK(!cmd.args.empty() && cmd.args.front() == "train",
                "launch runs `numeral train` in every process: give `-- train ...`{}",
                cmd.args.empty() ? "" : fmt::format(", not `-- {} ...`", cmd.args.front()));
  const std::string exe = self_executable();
  InterruptScope interrupts;  // the first SIGINT/SIGTERM is forwarded, not obeyed
  std::vector<Rank> ranks;
  for (int64_t l = 0; l < cmd.nproc; ++l) ranks.push_back(start_rank(cmd, exe, l));
  bool forwarded = false;
  int failed_rank = -1, failure_code = 0;
  std::chrono::steady_clock::time_point kill_at{};
  for (;;) {
    std::vector<pollfd> polled;
    std::vector<std::pair<size_t, int>> owners;  // (rank index, stream)
    for (size_t i = 0; i < ranks.size(); ++i) {
      for (int s = 0; s < 2; ++s) {
        if (ranks[i].fds[s] >= 0) {
          polled.push_back({ranks[i].fds[s], POLLIN, 0});
          owners.emplace_back(i, s);
        }
      }
    }
    if (!polled.empty()) ::poll(polled.data(), polled.size(), 100);
    for (size_t k = 0; k < polled.size(); ++k) {
      if ((polled[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      auto& [i, s] = owners[k];
      char buffer[8192];
      const ssize_t n = ::read(polled[k].fd, buffer, sizeof buffer);
      if (n > 0) {
        relay(ranks[i], s, buffer, static_cast<size_t>(n), false);
      } else if (n == 0 || errno != EINTR) {
        relay(ranks[i], s, "", 0, true);
        ::close(ranks[i].fds[s]);
        ranks[i].fds[s] = -1;
      }
    }
    if (interrupts.requested() && !forwarded) {
      forwarded = true;
      fmt::print(stderr, "launch: {}: passing it to every rank (each checkpoints and stops)\n",
                 signal_name(interrupts.signal()));
      signal_all(ranks, interrupts.signal());
    }
    for (auto& r : ranks) {
      int status = 0;
      if (r.exited || ::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      r.exited = true;
      r.exit_code = exit_code_of(status);
      if (r.exit_code != 0 && failed_rank < 0 && !forwarded) {
        failed_rank = static_cast<int>(r.rank);
        failure_code = r.exit_code;
        fmt::print(stderr, "launch: rank {} ended with exit code {}; stopping the others\n", r.rank,
                   r.exit_code);
        signal_all(ranks, SIGTERM);
        kill_at = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(cmd.grace_s * 1000));
      }
    }
    if (failed_rank >= 0 && std::chrono::steady_clock::now() > kill_at) signal_all(ranks, SIGKILL);
    bool done = true;
    for (const auto& r : ranks) done = done && r.exited && r.fds[0] < 0 && r.fds[1] < 0;
    if (done) break;
  }
  int code = failed_rank >= 0 ? failure_code : 0;
  for (const auto& r : ranks) {
    if (code == 0) code = r.exit_code;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // The group's exit code is the launcher's: the first failure, else a rank's signal code, else 0.
  if (code != 0) std::exit(code);
}

const bool kRegistered = register_command(/*order=*/32, [](CLI::App& app) {
  auto cmd = std::make_shared<LaunchCommand>();
  auto* sub = app.add_subcommand(
      "launch", "start the processes of a data-parallel `numeral train` on this machine");
  sub->add_option("-n,--nproc", cmd->nproc, "processes on this machine")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  sub->add_option("--nnodes", cmd->nnodes, "machines in the group (one launch on each)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  sub->add_option("--node-rank", cmd->node_rank, "this machine's place among them (0: rank 0's)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--master-addr", cmd->master_addr, "address of the machine with rank 0")
      ->capture_default_str();
  sub->add_option("--master-port", cmd->master_port, "port rank 0 serves the group on")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{65535}));
  sub->add_option("--grace", cmd->grace_s,
                  "seconds the other ranks get to stop, after one fails, before SIGKILL")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("command", cmd->args, "after --: the train command every process runs")
      ->required();
  sub->footer(
      "Example: numeral launch -n 2 -- train --data mnist --batch-size 32 --run-dir runs/dp\n"
      "Two machines: numeral launch -n 1 --nnodes 2 --node-rank R --master-addr HOST0 -- train "
      "...");
  sub->callback([cmd] { run(*cmd); });
});

}  // namespace
}  // namespace numeral::cli
