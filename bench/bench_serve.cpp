// Load benchmark of `numeral serve` (not a test): requests/s and p50/p99 latency of
// POST /api/generate at default settings (DDPM 100 steps, w = 0.25), for 1 and 16 digits per
// request, with 1, 8 and 32 concurrent clients. The server runs in this process on a free loopback
// port; the clients are threads with their own connections.
//
//   ./build/bench_serve [--checkpoint models/mnist.safetensors] [--seconds 20] [--threads 2]
//                       [--digits 1|16] [--clients N]   (one row instead of the table)
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "numeral/common/runtime.h"
#include "numeral/serve/server.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
  int clients = 0;
  int digits = 0;
  int64_t requests = 0;
  int64_t failures = 0;
  double seconds = 0;
  double p50 = 0, p99 = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

Row load(int port, int clients, int digits, double seconds) {
  // `digits` images: one class, or 16 as 8 classes x 2, so each request is one batch.
  const std::string body =
      digits == 1 ? std::string(R"({"classes":[7],"per_class":1,"seed":SEED})")
                  : std::string(R"({"classes":[0,1,2,3,4,5,6,7],"per_class":2,"seed":SEED})");
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int64_t> failures{0};
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600, 0);
      for (int i = 0; Clock::now() < end; ++i) {
        std::string b = body;
        b.replace(b.find("SEED"), 4, std::to_string(c * 100000 + i));
        const auto t0 = Clock::now();
        auto res = client.Post("/api/generate", b, "application/json");
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (!res || res->status != 200) {
          ++failures;
          continue;
        }
        latencies[c].push_back(s);
      }
    });
  }
  for (auto& t : threads) t.join();
  Row row;
  row.clients = clients;
  row.digits = digits;
  row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  row.requests = static_cast<int64_t>(all.size());
  row.failures = failures;
  row.p50 = percentile(all, 0.5);
  row.p99 = percentile(all, 0.99);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint = "models/mnist.safetensors";
  double seconds = 20;
  int threads = 0;
  std::vector<int> digit_rows = {1, 16}, client_rows = {1, 8, 32};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--digits")) digit_rows = {std::stoi(argv[i + 1])};
    if (!std::strcmp(argv[i], "--clients")) client_rows = {std::stoi(argv[i + 1])};
    if (!std::strcmp(argv[i], "--checkpoint")) checkpoint = argv[i + 1];
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::stod(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
  }
  numeral::configure_allocator();
  const int used = numeral::configure_threads(threads);
  numeral::serve::ServerOptions options;
  options.port = 0;
  numeral::ExecutionOptions execution;
  execution.batch_size = options.max_images;
  numeral::serve::Server server(numeral::Pipeline(checkpoint, torch::kCPU, execution), options,
                                std::nullopt);
  const int port = server.bind();
  std::thread http([&] { server.listen(); });
  fmt::print(
      "bench_serve: {} on 127.0.0.1:{}, {} LibTorch threads, default request settings "
      "(ddpm 100 steps, w 0.25), {:g} s per row\n",
      checkpoint, port, used, seconds);
  fmt::print(
      "| digits/request | clients | requests | requests/s | digits/s | p50 s | p99 s | "
      "failed |\n|---|---|---|---|---|---|---|---|\n");
  for (int digits : digit_rows) {
    for (int clients : client_rows) {
      const Row r = load(port, clients, digits, seconds);
      const double rps = static_cast<double>(r.requests) / r.seconds;
      fmt::print("| {} | {} | {} | {:.2f} | {:.1f} | {:.2f} | {:.2f} | {} |\n", r.digits, r.clients,
                 r.requests, rps, rps * r.digits, r.p50, r.p99, r.failures);
      std::fflush(stdout);
    }
  }
  server.stop();
  http.join();
  return 0;
}
