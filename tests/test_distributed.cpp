// Data-parallel training (issue 17) on the CPU, with c10d's Gloo on loopback: two processes train
// as one does on the same global batch, only rank 0 writes, a missing peer is named within the
// timeout, a killed peer stops the other, Ctrl-C on the launcher stops the group with a whole
// checkpoint, and a group resumes exactly.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "numeral/io/checkpoint.h"
#include "numeral/train/distributed.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

// A loopback port nobody listens on now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t size = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// `numeral train` on the synthetic digits with a tiny model, one thread per process.
std::string tiny_train(const std::string& more) {
  return fmt::format(
      "train --data '{}' --channels 8,16 --groups 4 --time-embed-dim 16 --class-embed-dim 16 "
      "--timesteps 20 --lr 3e-3 --warmup-steps 2 --val-samples 16 --threads 1 {}",
      synthetic_dataset().string(), more);
}

std::map<std::string, torch::Tensor> weights(const fs::path& run_dir) {
  auto tensors = load_checkpoint(run_dir / "checkpoint.safetensors", "diffusion").tensors;
  std::map<std::string, torch::Tensor> kept;
  for (auto& [name, t] : tensors) {
    if (name.rfind("model.", 0) == 0 || name.rfind("ema.", 0) == 0) kept.emplace(name, t);
  }
  return kept;
}

void expect_close(const fs::path& a, const fs::path& b, double rtol, double atol) {
  const auto wa = weights(a), wb = weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) {
    EXPECT_TRUE(torch::allclose(t, wb.at(name), rtol, atol))
        << name << ": max difference " << (t - wb.at(name)).abs().max().item<double>();
  }
}

int64_t checkpoint_step(const fs::path& run_dir) {
  return load_checkpoint(run_dir / "checkpoint.safetensors", "diffusion").state.at("step");
}

TEST(DistOptions, TheTorchrunVariablesAndTheirErrors) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("MASTER_ADDR", "10.0.0.7", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  DistOptions d = dist_options_from_environment();
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.local_rank, 0);
  EXPECT_EQ(d.master_addr, "10.0.0.7");
  EXPECT_EQ(d.master_port, 1234);
  EXPECT_TRUE(d.enabled());
  ::setenv("RANK", "one", 1);
  EXPECT_ERROR(dist_options_from_environment(), "RANK=one: expected an integer");
  ::setenv("RANK", "4", 1);
  EXPECT_ERROR(dist_options_from_environment().validate(), "rank 4: expected 0 to 3");
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(v);
  EXPECT_FALSE(dist_options_from_environment().enabled());
  d = {};
  d.backend = "mpi";
  EXPECT_ERROR(d.validate(), "dist backend 'mpi': expected auto, gloo or nccl");
  d.backend = "nccl";
  EXPECT_ERROR(resolve_backend(d, torch::kCPU), "no NCCL backend");
}

TEST(DataParallel, TwoProcessesTrainAsOneOnTheSameGlobalBatch) {
  SKIP_WITHOUT_CLI();
  const TempDir dir;
  const CliResult one = run_cli(
      tiny_train(fmt::format("--batch-size 16 --epochs 2 --run-dir '{}'", (dir / "one").string())),
      dir.path());
  ASSERT_EQ(one.rc, 0) << one.err;
  const int port = free_port();
  const CliResult two =
      run_cli(fmt::format("launch -n 2 --master-port {} -- {}", port,
                          tiny_train(fmt::format("--batch-size 8 --epochs 2 --run-dir '{}'",
                                                 (dir / "two").string()))),
              dir.path());
  ASSERT_EQ(two.rc, 0) << two.out << two.err;
  EXPECT_TRUE(contains(two.out, fmt::format("[rank 0]   group:     rank 0 of 2 (gloo, "
                                            "127.0.0.1:{}); batch 8 per rank, global batch 16",
                                            port)))
      << two.out;
  EXPECT_TRUE(contains(two.out, "[rank 0] epoch   2")) << two.out;
  EXPECT_FALSE(contains(two.out, "[rank 1] epoch")) << two.out;  // only rank 0 speaks
  EXPECT_EQ(checkpoint_step(dir / "one"), 8);
  EXPECT_EQ(checkpoint_step(dir / "two"), 8);
  expect_close(dir / "one", dir / "two", 1e-3, 1e-5);
}

TEST(DataParallel, OnlyRankZeroWritesTheRunDirectory) {
  SKIP_WITHOUT_CLI();
  const TempDir dir;
  const int port = free_port();
  const std::string group =
      fmt::format("--world-size 2 --master-port {} --batch-size 8 --epochs 1", port);
  CliProcess rank0(
      tiny_train(fmt::format("{} --rank 0 --run-dir '{}'", group, (dir / "r0").string())),
      dir.path(), "rank0");
  CliProcess rank1(
      tiny_train(fmt::format("{} --rank 1 --run-dir '{}'", group, (dir / "r1").string())),
      dir.path(), "rank1");
  const CliResult r0 = rank0.wait(), r1 = rank1.wait();
  ASSERT_EQ(r0.rc, 0) << r0.err;
  ASSERT_EQ(r1.rc, 0) << r1.err;
  EXPECT_TRUE(fs::exists(dir / "r0" / "checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "r0" / "log.jsonl"));
  EXPECT_FALSE(fs::exists(dir / "r1"));
  EXPECT_FALSE(contains(r1.out, "epoch")) << r1.out;
}

TEST(DataParallel, APeerThatNeverArrivesIsNamedWithinTheTimeout) {
  SKIP_WITHOUT_CLI();
  const TempDir dir;
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  const CliResult r =
      run_cli(tiny_train(fmt::format("--world-size 3 --rank 0 --master-port {} --dist-timeout 2 "
                                     "--run-dir '{}'",
                                     port, (dir / "run").string())),
              dir.path());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.err, fmt::format("numeral: error: rank 0: ranks 1, 2 did not join the "
                                          "group at 127.0.0.1:{} within 2 s (world size 3)",
                                          port)))
      << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_LT(seconds, 15);
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoint.safetensors"));
  // A rank whose rank 0 never comes.
  const CliResult lone =
      run_cli(tiny_train(fmt::format("--world-size 2 --rank 1 --master-port {} --dist-timeout 2 "
                                     "--run-dir '{}'",
                                     free_port(), (dir / "lone").string())),
              dir.path());
  EXPECT_EQ(lone.rc, 1);
  EXPECT_TRUE(contains(lone.err, "rank 1: rank 0 did not answer at 127.0.0.1:")) << lone.err;
}

TEST(DataParallel, AKilledPeerStopsTheOtherWithAnError) {
  SKIP_WITHOUT_CLI();
  const TempDir dir;
  const int port = free_port();
  const std::string group = fmt::format(
      "--world-size 2 --master-port {} --batch-size 8 --epochs 200 --dist-timeout 60 "
      "--run-dir '{}'",
      port, (dir / "run").string());
  CliProcess rank0(tiny_train(group + " --rank 0"), dir.path(), "rank0");
  CliProcess rank1(tiny_train(group + " --rank 1"), dir.path(), "rank1");
  ASSERT_TRUE(rank0.wait_for_output("epoch   1", 120)) << rank0.out();
  const auto start = std::chrono::steady_clock::now();
  rank1.send(SIGKILL);
  const CliResult r = rank0.wait();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.err, "rank 0: the group broke during an all-reduce")) << r.err;
  EXPECT_LT(seconds, 30);                      // an error, well before the 60 s timeout
  EXPECT_GE(checkpoint_step(dir / "run"), 4);  // the last checkpoint (epoch 1 or later) is whole
}

TEST(DataParallel, CtrlCOnTheLauncherStopsEveryRankAndTheGroupResumesExactly) {
  SKIP_WITHOUT_CLI();
  const TempDir dir;
  // Uninterrupted: 3 epochs of 4 steps (64 images, global batch 16).
  const std::string run =
      fmt::format("--batch-size 8 --epochs 3 --run-dir '{}'", (dir / "a").string());
  const CliResult whole = run_cli(
      fmt::format("launch -n 2 --master-port {} -- {}", free_port(), tiny_train(run)), dir.path());
  ASSERT_EQ(whole.rc, 0) << whole.err;
  // Stopped by --max-steps inside epoch 2, then resumed by the whole group.
  const std::string b = (dir / "b").string();
  const CliResult first = run_cli(
      fmt::format(
          "launch -n 2 --master-port {} -- {}", free_port(),
          tiny_train(fmt::format("--batch-size 8 --epochs 3 --max-steps 6 --run-dir '{}'", b))),
      dir.path());
  ASSERT_EQ(first.rc, 0) << first.err;
  EXPECT_EQ(checkpoint_step(dir / "b"), 6);
  const CliResult resumed = run_cli(
      fmt::format("launch -n 2 --master-port {} -- train --run-dir '{}' --resume --max-steps 0 "
                  "--threads 1",
                  free_port(), b),
      dir.path());
  ASSERT_EQ(resumed.rc, 0) << resumed.out << resumed.err;
  EXPECT_EQ(checkpoint_step(dir / "b"), 12);
  expect_close(dir / "a", dir / "b", 0, 0);

  // Ctrl-C on the launcher: every rank checkpoints and stops; the exit code says SIGINT.
  CliProcess launcher(
      fmt::format("launch -n 2 --master-port {} -- {}", free_port(),
                  tiny_train(fmt::format("--batch-size 8 --epochs 500 --run-dir '{}'",
                                         (dir / "c").string()))),
      dir.path(), "launcher");
  ASSERT_TRUE(launcher.wait_for_output("[rank 0] epoch   1", 120)) << launcher.out();
  launcher.send(SIGINT);
  const CliResult stopped = launcher.wait();
  EXPECT_EQ(stopped.rc, 130) << stopped.err;
  EXPECT_TRUE(contains(stopped.err, "launch: SIGINT: passing it to every rank")) << stopped.err;
  EXPECT_TRUE(contains(stopped.err, "[rank 1] numeral: stopped by SIGINT")) << stopped.err;
  EXPECT_TRUE(contains(stopped.out, "[rank 0] stopped at step")) << stopped.out;
  EXPECT_GE(checkpoint_step(dir / "c"), 4);
}

TEST(LaunchCli, RunsTrainOnlyAndChecksItsFlags) {
  SKIP_WITHOUT_CLI();
  const CliResult sample = run_cli("launch -n 2 -- sample --digit 3");
  EXPECT_EQ(sample.rc, 1);
  EXPECT_TRUE(contains(sample.err,
                       "launch runs `numeral train` in every process: give `-- train "
                       "...`, not `-- sample ...`"))
      << sample.err;
  const CliResult node = run_cli("launch -n 2 --nnodes 2 --node-rank 2 -- train");
  EXPECT_EQ(node.rc, 1);
  EXPECT_TRUE(contains(node.err, "--node-rank 2: expected 0 to 1 (--nnodes 2)")) << node.err;
  // A failing rank stops the launch with its exit code (whichever rank fails first: the launcher
  // stops the other, which may not have printed yet).
  const CliResult bad = run_cli("launch -n 2 -- train --epochs 0");
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_TRUE(contains(bad.err, "] numeral: error: --epochs: expected at least 1, got 0"))
      << bad.err;
  EXPECT_TRUE(contains(bad.err, "ended with exit code 2; stopping the others")) << bad.err;
}

}  // namespace
}  // namespace numeral
