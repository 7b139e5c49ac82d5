// `numeral sample`: digits from a trained model as a labelled grid, single PNGs or MNIST-format
// IDX files (streamed batch by batch, so 60,000 digits never sit in memory).
#include <fmt/core.h>

#include <atomic>
#include <chrono>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/generate/export.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "numeral/train/trainer.h"
#include "options.h"
#include "sampling.h"

namespace numeral::cli {
namespace {

constexpr int64_t kMaxGridColumns = 100;

struct SampleCommand {
  RuntimeOptions runtime;
  std::string checkpoint;
  std::vector<int64_t> digits;  // empty = every class
  int64_t per_digit = 8;
  bool unconditional = false;
  GenerateOptions generate;
  std::string grid, png_dir, idx;
  bool overwrite = false;  // replace an earlier export in --png-dir or at --idx whole
  int scale = 3;
};

void run(SampleCommand& cmd, CLI::App& app) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  auto& sampler = cmd.generate.sampler;
  NUMERAL_CHECK(!(cmd.unconditional && !cmd.digits.empty()),
                "--unconditional and --digit exclude each other");
  NUMERAL_CHECK(!(cmd.unconditional && app.count("--w")),
                "--w needs class labels; drop it with --unconditional");
  if (cmd.unconditional) cmd.generate.guidance = 0;  // the null label has nothing to guide toward
  const auto [device, trained, T, classes] =
      open_for_sampling(cmd.runtime, cmd.checkpoint, cmd.generate, cmd.digits);
  const auto rows = static_cast<int64_t>(classes.size());
  const int64_t count = request_size(cmd.per_digit, rows, "--per-digit");
  const LabelSource labels = class_major_labels(
      cmd.unconditional ? std::vector<int64_t>(classes.size(), kNullLabel) : classes,
      cmd.per_digit);

  if (cmd.grid.empty() && cmd.png_dir.empty() && cmd.idx.empty()) cmd.grid = "samples.png";
  if (!cmd.grid.empty()) {
    NUMERAL_CHECK(cmd.per_digit <= kMaxGridColumns,
                  "--grid: at most {} samples per digit fit a picture (got --per-digit {}); use "
                  "--idx or --png-dir for large exports",
                  kMaxGridColumns, cmd.per_digit);
    check_output_path(cmd.grid, "--grid");
  }
  const auto& mc = trained.config.model;
  // Multi-file outputs appear whole when every image is done, or not at all.
  std::unique_ptr<PendingDir> png_dir;
  if (!cmd.png_dir.empty()) png_dir = std::make_unique<PendingDir>(cmd.png_dir, cmd.overwrite);
  std::unique_ptr<IdxExport> idx;
  if (!cmd.idx.empty()) {
    idx = std::make_unique<IdxExport>(
        cmd.idx, count, !cmd.unconditional,
        std::vector<int64_t>{mc.image_channels, mc.image_size, mc.image_size}, cmd.overwrite);
  }

  const int64_t steps = sampler.resolved_steps(T);
  const std::string what = cmd.unconditional
                               ? "unconditional"
                               : fmt::format("w={}", format_weight(cmd.generate.guidance));
  fmt::print("numeral sample  checkpoint {}  device {}\n", trained.path.string(), device.str());
  fmt::print("  sampler {}, {} steps (T = {}), {}, seed {}: {} images ({} per {})\n", sampler.name,
             steps, T, what, cmd.generate.seed, count, cmd.per_digit,
             cmd.unconditional ? "row" : "digit");
  std::fflush(stdout);

  int64_t done = 0;
  std::vector<torch::Tensor> kept;  // uint8 pixels for the grid
  std::vector<int64_t> index_in_class(static_cast<size_t>(mc.num_classes + 1), 0);
  ProgressBar bar("sample", count, "img");
  const auto start_time = std::chrono::steady_clock::now();
  try {
    generate_batches(
        trained.model, trained.diffusion, count, labels, cmd.generate,
        [&](int64_t start, const torch::Tensor& images) {
          const auto batch_labels = labels(start, start + images.size(0));
          if (idx) idx->append(images, batch_labels);
          if (png_dir) {
            for (int64_t i = 0; i < images.size(0); ++i) {
              const int64_t label = batch_labels[i].item<int64_t>();
              const auto slot = static_cast<size_t>(label < 0 ? mc.num_classes : label);
              const std::string name =
                  label < 0 ? fmt::format("sample-{}.png", index_in_class[slot]++)
                            : fmt::format("digit-{}-{}.png", label, index_in_class[slot]++);
              png_dir->write(name, encode_png(image_from_tensor(images[i])));
            }
          }
          if (!cmd.grid.empty()) kept.push_back(from_model_range(images));
          done = start + images.size(0);
          bar.update(done);
        });
  } catch (const Interrupted& e) {
    throw Interrupted(e.signal(),
                      fmt::format("after {} of {} images; nothing was written", done, count));
  }
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  if (idx) idx->commit();
  if (png_dir) png_dir->commit();

  fmt::print("  {} images in {:.1f} s ({:.1f} images/s)\n", count, seconds,
             static_cast<double>(count) / std::max(seconds, 1e-9));
  if (!cmd.grid.empty()) {
    GridLabels grid_labels;
    for (int64_t c : classes)
      grid_labels.rows.push_back(cmd.unconditional ? "" : std::to_string(c));
    grid_labels.title =
        fmt::format("{} {} steps, {}, seed {}", sampler.name, steps, what, cmd.generate.seed);
    write_png(cmd.grid, labelled_grid(torch::cat(kept), cmd.per_digit, grid_labels, cmd.scale));
    fmt::print("  grid:   {} ({} row{} x {} samples)\n", cmd.grid, classes.size(),
               classes.size() == 1 ? "" : "s", cmd.per_digit);
  }
  if (png_dir) fmt::print("  PNGs:   {}/ ({} files)\n", png_dir->target().string(), count);
  if (idx) {
    fmt::print("  IDX:    {}\n", idx->paths().images.string());
    if (idx->has_labels()) fmt::print("          {}\n", idx->paths().labels.string());
  }
}

const bool kRegistered = register_command(/*order=*/50, [](CLI::App& app) {
  auto cmd = std::make_shared<SampleCommand>();
  auto* sub = app.add_subcommand("sample", "generate digits from a trained model");
  sub->add_option("--checkpoint", cmd->checkpoint, "run directory or checkpoint file")->required();
  sub->add_option("--digit", cmd->digits, "digits to generate, e.g. 7 or 1,4,7 (default: all)")
      ->delimiter(',');
  sub->add_option("--per-digit", cmd->per_digit, "images per digit (one grid row each)")
      ->capture_default_str()
      ->check(at_least(1));
  sub->add_option("--w", cmd->generate.guidance,
                  "classifier-free guidance weight: eps = (1+w) eps(y) - w eps(null); 0 = plain "
                  "conditional")
      ->capture_default_str();
  sub->add_flag("--unconditional", cmd->unconditional,
                "ignore the labels (null class); rows are then unlabelled");
  sub->add_option("--seed", cmd->generate.seed,
                  "same seed, checkpoint and options: the same images on any device")
      ->capture_default_str();
  add_generate_options(*sub, cmd->generate);
  add_sampler_options(*sub, cmd->generate.sampler);
  const char* outputs = "Outputs";
  sub->add_option("--grid", cmd->grid,
                  "PNG grid: a row per digit, labelled (default samples.png when no output is "
                  "given)")
      ->group(outputs);
  sub->add_option("--scale", cmd->scale, "grid upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16))
      ->group(outputs);
  sub->add_option("--png-dir", cmd->png_dir,
                  "one unscaled PNG per image: DIR/digit-<d>-<i>.png (sample-<i>.png when "
                  "unconditional); written whole when every image is done")
      ->group(outputs);
  sub->add_option("--idx", cmd->idx,
                  "MNIST-format files PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte "
                  "(gzip-compressed, each name ending in .gz, when PREFIX ends in .gz; no labels "
                  "file when unconditional). DIR/train makes DIR a dataset for --data DIR. "
                  "Streamed in batches; both files appear together when every image is done")
      ->group(outputs);
  sub->add_flag("--overwrite", cmd->overwrite,
                "replace an earlier export in --png-dir (the whole directory) or at --idx (its "
                "images and labels); without it, either is refused")
      ->group(outputs);
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
