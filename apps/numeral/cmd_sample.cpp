// `numeral sample`: digits from a trained model as a labelled grid, single PNGs or MNIST-format
// IDX files (streamed batch by batch, so 60,000 digits never sit in memory).
#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <optional>

#include "numeral/cli.h"
#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/data/dataset.h"
#include "numeral/eval/ranker.h"
#include "numeral/generate/export.h"
#include "numeral/generate/pictures.h"
#include "numeral/generate/request.h"
#include "options.h"
#include "sampling.h"

namespace numeral::cli {
namespace {

constexpr int64_t kMaxGridColumns = 100;

struct SampleCommand {
  RuntimeOptions runtime;
  std::string checkpoint;
  std::string guide;  // autoguidance's weaker model
  GenerateRequest request;
  ExecutionOptions execution;
  std::string grid, png_dir, idx;
  bool overwrite = false;  // replace an earlier export in --png-dir or at --idx whole
  int scale = 3;
  SelectionOptions selection;  // --best-of K: keep the best of K candidates per image
};

void run(SampleCommand& cmd, CLI::App& app) {
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  NUMERAL_CHECK(!(cmd.request.unconditional && app.count("--w")),
                "--w needs class labels; drop it with --unconditional");
  const std::string checkpoint = checkpoint_or_default(cmd.checkpoint, "sample");
  const Pipeline pipeline = open_pipeline(cmd.runtime, checkpoint, cmd.execution, cmd.guide);
  apply_model_defaults(app, pipeline.model(), cmd.request);
  const GenerateRequest request = pipeline.resolve(cmd.request);
  const auto& sampler = request.sampler;
  const bool unconditional = request.unconditional;
  // The grid's rows: the classes, or as many unlabelled rows when unconditional.
  const std::vector<int64_t> classes =
      unconditional ? std::vector<int64_t>(static_cast<size_t>(pipeline.num_classes()), kNullLabel)
                    : request.classes;
  const int64_t per_digit = request.per_class;
  const int64_t count = request.count(pipeline.num_classes());
  const LabelSource labels = pipeline.labels(request);
  const TrainedModel& trained = pipeline.model();

  if (cmd.grid.empty() && cmd.png_dir.empty() && cmd.idx.empty()) cmd.grid = "samples.png";
  if (!cmd.grid.empty()) {
    NUMERAL_CHECK(per_digit <= kMaxGridColumns,
                  "--grid: at most {} samples per class fit a picture (got --per-class {}); use "
                  "--idx or --png-dir for large exports",
                  kMaxGridColumns, per_digit);
    check_output_path(cmd.grid, "--grid");
  }
  const auto& mc = trained.config.model;
  // Multi-file outputs appear whole when every image is done, or not at all.
  std::unique_ptr<PendingDir> png_dir;
  if (!cmd.png_dir.empty()) png_dir = std::make_unique<PendingDir>(cmd.png_dir, cmd.overwrite);
  std::unique_ptr<IdxExport> idx;
  if (!cmd.idx.empty()) {
    idx = std::make_unique<IdxExport>(
        cmd.idx, count, !unconditional,
        std::vector<int64_t>{mc.image_channels, mc.image_size, mc.image_size}, cmd.overwrite);
  }

  const int64_t T = pipeline.T();
  const int64_t steps = sampler.resolved_steps(T);
  const std::string what = unconditional ? "unconditional" : format_guidance(request);
  fmt::print("numeral sample  checkpoint {}  device {}{}\n", trained.path.string(),
             pipeline.device().str(), precision_addition(pipeline.execution().precision));
  if (trained.guide && request.w_guide != 0)
    fmt::print("  autoguided by {}\n", trained.guide->path.string());
  fmt::print("  sampler {}, {} steps (T = {}), {}, seed {}: {} images ({} per {})\n", sampler.name,
             steps, T, what, request.seed, count, per_digit, unconditional ? "row" : "class");
  // --best-of: K candidates per image, class-major like the images, the best of each K kept.
  const int64_t best_of = cmd.selection.best_of;
  NUMERAL_CHECK(best_of == 1 || !unconditional,
                "--best-of ranks each image as its requested class; drop --unconditional");
  const std::vector<std::string>& class_names = pipeline.model().class_names;
  // PNG names and messages say "digit" only for a model of digits (its classes named 0 to 9).
  const bool digits = class_names == default_class_names("mnist", 10);
  Ranker ranker(cmd.selection, "", class_names, pipeline.device());
  ranker.check_images(mc.image_size, mc.image_channels, mc.num_classes);
  const Selection selection = ranker.selection();
  if (best_of > 1) {
    fmt::print("  each the best of {} candidates by the {}\n", best_of, selection.rank_by);
  }
  std::fflush(stdout);

  int64_t done = 0;
  std::vector<torch::Tensor> kept;  // uint8 pixels for the grid
  std::vector<int64_t> index_in_class(static_cast<size_t>(mc.num_classes + 1), 0);
  GenerationProgress progress("sample", count * best_of);
  const auto start_time = std::chrono::steady_clock::now();
  auto consume = [&](int64_t start, const torch::Tensor& images) {
    const auto batch_labels = labels(start, start + images.size(0));
    if (idx) idx->append(images, batch_labels);
    if (png_dir) {
      for (int64_t i = 0; i < images.size(0); ++i) {
        const int64_t label = batch_labels[i].item<int64_t>();
        const auto slot = static_cast<size_t>(label < 0 ? mc.num_classes : label);
        const std::string name = label < 0 ? fmt::format("sample-{}.png", index_in_class[slot]++)
                                           : fmt::format("{}-{}-{}.png", digits ? "digit" : "class",
                                                         label, index_in_class[slot]++);
        png_dir->write(name, encode_png(image_from_tensor(images[i])));
      }
    }
    if (!cmd.grid.empty()) kept.push_back(from_model_range(images));
    done = start + images.size(0);
  };
  std::optional<BestOf> best;
  try {
    if (best_of == 1) {
      pipeline.run(request, consume, progress.observer());
    } else {
      best.emplace(best_of, selection.scorer);
      GenerateRequest candidates = request;
      candidates.per_class = per_digit * best_of;
      const LabelSource candidate_labels = pipeline.labels(candidates);
      pipeline.run(
          candidates,
          [&](int64_t start, const torch::Tensor& images) {
            const auto [winners, winner_labels] =
                best->add(images, candidate_labels(start, start + images.size(0)));
            if (winners.size(0) > 0) consume(done, winners);
          },
          progress.observer());
    }
  } catch (const Interrupted& e) {
    throw Interrupted(e.signal(),
                      fmt::format("after {} of {} images; nothing was written", done, count));
  }
  progress.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  if (idx) idx->commit();
  if (png_dir) png_dir->commit();

  fmt::print("  {} images in {:.1f} s ({:.1f} images/s)\n", count, seconds,
             static_cast<double>(count) / std::max(seconds, 1e-9));
  if (best) {
    fmt::print(
        "  best of {}: mean score {:.4f} kept against {:.4f} over all candidates; ranking "
        "took {:.1f} s\n",
        best_of, best->mean_best_score(), best->mean_score(), best->scoring_seconds());
  }
  if (!cmd.grid.empty()) {
    GridLabels grid_labels;
    for (int64_t c : classes) {
      grid_labels.rows.push_back(unconditional ? "" : class_names.at(static_cast<size_t>(c)));
    }
    grid_labels.title =
        fmt::format("{} {} steps, {}, seed {}", sampler.name, steps, what, request.seed);
    write_png(cmd.grid, labelled_grid(torch::cat(kept), per_digit, grid_labels, cmd.scale));
    fmt::print("  grid:   {} ({} row{} x {} samples)\n", cmd.grid, classes.size(),
               classes.size() == 1 ? "" : "s", per_digit);
  }
  if (png_dir) fmt::print("  PNGs:   {}/ ({} files)\n", png_dir->target().string(), count);
  if (idx) {
    fmt::print("  IDX:    {}\n", idx->paths().images.string());
    if (idx->has_labels()) fmt::print("          {}\n", idx->paths().labels.string());
  }
}

const bool kRegistered = register_command(/*order=*/50, [](CLI::App& app) {
  auto cmd = std::make_shared<SampleCommand>();
  auto* sub = app.add_subcommand("sample", "generate images (digits) from a trained model");
  sub->add_option("--checkpoint", cmd->checkpoint,
                  "run directory or checkpoint file (default: the shipped student, "
                  "models/mnist-student.safetensors)");
  add_guide_option(*sub, cmd->guide);
  add_request_options(*sub, cmd->request);
  add_execution_options(*sub, cmd->execution);
  const char* outputs = "Outputs";
  sub->add_option(
         "--grid", cmd->grid,
         "PNG grid: a row per class, labelled with its name (default samples.png when no output is "
         "given)")
      ->group(outputs);
  sub->add_option("--scale", cmd->scale, "grid upscaling factor (nearest neighbour)")
      ->capture_default_str()
      ->check(between(1, 16))
      ->group(outputs);
  sub->add_option("--png-dir", cmd->png_dir,
                  "one unscaled PNG per image: DIR/digit-<d>-<i>.png (class-<c>-<i>.png when the "
                  "classes are not digits, sample-<i>.png when "
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
  FlagBinding selection;
  selection.group = "Selection by score";
  bind_fields(*sub, cmd->selection, selection);
  add_runtime_options(*sub, cmd->runtime);
  sub->callback([cmd, sub] { run(*cmd, *sub); });
});

}  // namespace
}  // namespace numeral::cli
