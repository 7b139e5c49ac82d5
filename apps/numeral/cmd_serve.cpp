// `numeral serve`: keep a model loaded and answer a web page and a JSON API (serve/server.h).
// SIGINT and SIGTERM drain: no new connections, the accepted requests finish, then exit 0; a
// second signal ends the process at once.
#include <fmt/core.h>
#include <pthread.h>
#include <signal.h>

#include <optional>
#include <thread>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/data/dataset.h"
#include "numeral/generate/request.h"
#include "numeral/inference/run_config.h"
#include "numeral/serve/server.h"
#include "options.h"
#include "sampling.h"

namespace numeral::cli {
namespace {

struct ServeCommand {
  RuntimeOptions runtime;
  std::string checkpoint;  // "" = the shipped model
  std::string guide;       // autoguidance's weaker model (requests' w_guide)
  serve::ServerOptions server;
  ExecutionOptions execution;  // its batch_size is the server's max_images
};

// The held-out images of the model's own data, at its size, for /api/forward; none (with a
// warning) when the data is not on this machine.
std::optional<serve::ForwardSource> forward_source(const TrainedModel& model) {
  try {
    DataSplit split = load_data(data_options_of(model.config));
    return serve::ForwardSource{std::move(split.val), split.name + " (held out)"};
  } catch (const Error& e) {
    fmt::print(stderr, "numeral serve: warning: no real images for the forward process: {}\n",
               e.what());
    return std::nullopt;
  }
}

void run(ServeCommand& cmd) {
  // Signals wait for sigwait below: every thread started from here on inherits the block.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string checkpoint = checkpoint_or_default(cmd.checkpoint, "serve");
  ExecutionOptions execution = cmd.execution;
  execution.batch_size = cmd.server.max_images;  // any request, or several sharing, is one batch
  Pipeline pipeline = open_pipeline(cmd.runtime, checkpoint, execution, cmd.guide);
  auto forward = forward_source(pipeline.model());
  const TrainedModel& model = pipeline.model();
  const std::string kind = model.student_steps > 0
                               ? fmt::format("student, {} steps", model.student_steps)
                               : std::string("diffusion");
  const std::string guide = model.guide
                                ? fmt::format(", guide {} at default w_guide = {:g}",
                                              model.guide->path.string(), model.default_w_guide)
                                : "";
  const std::string summary =
      fmt::format("model {} ({}, default w = {:g}{}), device {}{}, forward process: {}",
                  model.path.string(), kind, model.default_w, guide, pipeline.device().str(),
                  precision_addition(execution.precision), forward ? forward->name : "off");
  serve::Server server(std::move(pipeline), cmd.server, std::move(forward));
  const int port = server.bind();
  fmt::print("numeral serve: listening on http://{}:{}/  ({})\n", cmd.server.host, port, summary);
  std::fflush(stdout);

  std::thread http([&server] { server.listen(); });
  int signal = 0;
  sigwait(&signals, &signal);
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);  // a second signal ends the process at once
  fmt::print("numeral serve: {}: draining (finishing accepted requests)\n", signal_name(signal));
  std::fflush(stdout);
  server.stop();
  http.join();
  fmt::print("numeral serve: stopped\n");
}

const bool kRegistered = register_command(/*order=*/58, [](CLI::App& app) {
  auto cmd = std::make_shared<ServeCommand>();
  auto* sub = app.add_subcommand(
      "serve", "keep a model loaded: a web page and a JSON API (README, \"numeral serve\")");
  sub->add_option("--checkpoint", cmd->checkpoint,
                  "run directory or checkpoint file (default: the shipped student, "
                  "models/mnist-student.safetensors)");
  add_guide_option(*sub, cmd->guide);
  bind_fields(*sub, cmd->server, {"Server", {}, {}});
  add_execution_options(*sub, cmd->execution, {"batch_size"});
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd] { run(*cmd); });
});

}  // namespace
}  // namespace numeral::cli
