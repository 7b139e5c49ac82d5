// `numeral info`: versions, device, threads, the BLAS in use and the datasets found.
#include <fmt/core.h>

#include "numeral/cli.h"
#include "numeral/common/runtime.h"
#include "numeral/data/dataset.h"

namespace numeral::cli {
namespace {

struct InfoCommand {
  RuntimeOptions runtime;
  std::string root;
};

const bool kRegistered = register_command(/*order=*/10, [](CLI::App& app) {
  auto cmd = std::make_shared<InfoCommand>();
  auto* info = app.add_subcommand("info", "show versions, device, threads, BLAS and datasets");
  info->add_option("--root", cmd->root, "data directory (default $NUMERAL_DATA or ./data)");
  add_runtime_options(*info, cmd->runtime);
  info->callback([cmd] {
    configure_threads(cmd->runtime.threads);
    const torch::Device device = select_device(cmd->runtime.device);
    const RuntimeInfo r = runtime_info();
    fmt::print("numeral     {}\n", r.numeral_version);
    fmt::print("LibTorch    {}\n", r.torch_version);
    fmt::print("device      {} (selected: {})\n", r.device, device.str());
    fmt::print("CPU         {} threads for LibTorch, SIMD: {}\n", r.torch_threads,
               r.cpu_capability.empty() ? "unknown" : r.cpu_capability);
    fmt::print("BLAS        {}\n", r.blas);
    fmt::print("BLAS threads {}\n",
               r.blas_threads >= 0 ? std::to_string(r.blas_threads) : std::string("unknown"));
    DataOptions data;
    data.root = cmd->root;
    const auto root = data_root(data);
    const auto found = find_datasets(root);
    fmt::print("datasets    (root {})\n", root.string());
    if (found.empty()) fmt::print("  none; run `numeral data get mnist`\n");
    for (const auto& d : found) {
      fmt::print("  {:<14} {:>6} train {:>6} test  {}  [{}]\n", d.name, d.train, d.test,
                 d.dir.string(), d.source);
    }
  });
});

}  // namespace
}  // namespace numeral::cli
