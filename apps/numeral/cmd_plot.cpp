// `numeral plot RUN_DIR`: training and validation loss curves from the run's log.jsonl.
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "numeral/io/image.h"

namespace numeral::cli {
namespace {

struct PlotCommand {
  std::string run_dir;
  std::string out;  // "" = RUN_DIR/loss.png
  bool linear = false;
};

void run(PlotCommand& cmd) {
  const std::filesystem::path run_dir = cmd.run_dir;
  NUMERAL_CHECK(std::filesystem::is_directory(run_dir),
                "{}: not a directory; expected a run directory made by `numeral train`",
                cmd.run_dir);
  const auto history = read_training_log(run_dir / "log.jsonl");
  const std::filesystem::path out =
      cmd.out.empty() ? run_dir / "loss.png" : std::filesystem::path(cmd.out);
  check_output_path(out, "--out");
  const std::string name = run_dir.lexically_normal().filename().empty()
                               ? run_dir.lexically_normal().parent_path().filename().string()
                               : run_dir.lexically_normal().filename().string();
  write_png(out, loss_plot(history, fmt::format("{}: loss per epoch", name), !cmd.linear));
  const auto& last = history.back();
  const auto best =
      std::min_element(history.begin(), history.end(),
                       [](const auto& a, const auto& b) { return a.val_loss < b.val_loss; });
  fmt::print("{}: {} epochs, {} steps, {:.0f} s\n", cmd.run_dir, history.size(), last.step,
             last.elapsed_s);
  fmt::print("  last epoch {}: train {:.4f}  val {:.4f}\n", last.epoch, last.train_loss,
             last.val_loss);
  fmt::print("  best val {:.4f} at epoch {}\n", best->val_loss, best->epoch);
  fmt::print("  wrote {}\n", out.string());
}

const bool kRegistered = register_command(/*order=*/58, [](CLI::App& app) {
  auto cmd = std::make_shared<PlotCommand>();
  auto* sub = app.add_subcommand("plot", "plot a run's training and validation loss (PNG)");
  sub->add_option("run_dir", cmd->run_dir, "run directory with log.jsonl")->required();
  sub->add_option("--out,-o", cmd->out, "PNG to write (default RUN_DIR/loss.png)");
  sub->add_flag("--linear", cmd->linear, "linear y axis (default logarithmic)");
  sub->callback([cmd] { run(*cmd); });
});

}  // namespace
}  // namespace numeral::cli
