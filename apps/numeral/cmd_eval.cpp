// `numeral eval`, `eval popout`, `eval sweep`, `eval augment`, `eval clip`: judge a diffusion
// model's digits with the classifier (or CLIP) against real held-out digits; write JSON + Markdown
// reports and plots.
#include <fmt/core.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "numeral/cli.h"
#include "numeral/clip/pretrained.h"
#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/common/lock.h"
#include "numeral/common/progress.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "numeral/eval/augment.h"
#include "numeral/eval/classifier.h"
#include "numeral/eval/clip_score.h"
#include "numeral/eval/evaluate.h"
#include "numeral/eval/features.h"
#include "numeral/eval/popout.h"
#include "numeral/eval/ranker.h"
#include "numeral/eval/reference.h"
#include "numeral/eval/report.h"
#include "numeral/eval/samples.h"
#include "numeral/generate/request.h"
#include "numeral/inference/generate.h"
#include "numeral/io/image.h"
#include "options.h"
#include "sampling.h"

namespace numeral::cli {
namespace {

// Options every eval command shares.
struct EvalCommon {
  std::string checkpoint;   // diffusion checkpoint or run directory
  std::string guide;        // autoguidance's weaker model ("" = classifier-free guidance)
  std::string classifier;   // classifier checkpoint or its directory
  GenerateRequest request;  // sampler, w and seed (the classes are balanced by the command)
  ExecutionOptions execution;
  GenerateOptions generate() const { return generate_options(request, execution); }
  std::string out;  // "" = <run>/eval
  RuntimeOptions runtime;
  const CLI::App* command = nullptr;  // the flags, for the model's own defaults (load_all)
};

// The digits an eval judges: generated (--samples, optionally the best of K candidates each) or an
// IDX pair.
struct SampleSource {
  int64_t samples = kDefaultEvalSamples;
  std::string images, labels;  // evaluate an IDX pair instead of generating
  std::string data;            // data for the real reference in IDX mode ("" = the classifier's)
  SelectionOptions selection;
};

struct EvalCommand {
  EvalCommon common;
  SampleSource source;
  bool no_cas = false;
  int64_t cas_epochs = 0;
};

struct ClipCommand {
  EvalCommon common;
  SampleSource source;
};

struct PopoutCommand {
  EvalCommon common;
  int64_t per_class = 50;
};

struct SweepCommand {
  EvalCommon common;
  std::vector<double> w = {0, 0.25, 0.5, 1, 2};
  int64_t samples = kDefaultEvalSamples;
};

struct AugmentCommand {
  std::string checkpoint;        // the full-data generator
  std::string guide;             // its autoguidance model (--guide)
  std::vector<std::string> low;  // N=RUN: a generator trained on N real digits per class
  AugmentPlan plan;
  GenerateRequest request;  // how the generated digits are sampled (plan.generate)
  ExecutionOptions execution;
  std::string out;
  RuntimeOptions runtime;
};

// `required` marks --checkpoint and --classifier required (not on `eval` itself, whose options
// CLI11 would otherwise demand for `eval popout` too; run_eval checks them).
void add_common(CLI::App& sub, EvalCommon& c, bool required,
                std::set<std::string> skip_request = {"classes", "per_class", "unconditional"}) {
  auto* checkpoint = sub.add_option("--checkpoint", c.checkpoint,
                                    "diffusion checkpoint or run directory to evaluate");
  auto* classifier =
      sub.add_option("--classifier", c.classifier,
                     "classifier checkpoint or directory (from `numeral classifier train`)");
  if (required) checkpoint->required(), classifier->required();
  add_guide_option(sub, c.guide);
  c.command = &sub;
  add_request_options(sub, c.request, skip_request);
  add_execution_options(sub, c.execution);
  sub.add_option("--out", c.out, "where the reports go (default <run dir>/eval)");
  add_runtime_options(sub, c.runtime);
}

void add_source_options(CLI::App& sub, SampleSource& s, bool clip_model_flag = true) {
  sub.add_option("--samples", s.samples, "images to generate (balanced over the classes)")
      ->capture_default_str();
  sub.add_option("--images", s.images, "evaluate these IDX images instead of generating");
  sub.add_option("--labels", s.labels, "IDX labels: the class each --images image should be");
  sub.add_option("--data", s.data, "real reference data for --images (default: the classifier's)");
  FlagBinding binding;
  binding.group = "Selection by score";
  if (!clip_model_flag) binding.skip = {"clip_model"};
  bind_fields(sub, s.selection, binding);
}

// Checks the flags of a SampleSource and that exactly one source is named.
void check_source(const EvalCommon& c, const SampleSource& s) {
  NUMERAL_CHECK(!c.classifier.empty(),
                "numeral eval needs --classifier CLF (train one with `numeral classifier train`)");
  NUMERAL_CHECK(c.checkpoint.empty() != s.images.empty(),
                "numeral eval: pass either --checkpoint RUN (generate digits) or --images FILE "
                "--labels FILE (evaluate an IDX pair), not {}",
                c.checkpoint.empty() ? "neither" : "both");
  NUMERAL_CHECK(s.images.empty() || !s.labels.empty(),
                "--images {} needs --labels: an IDX file with the digit each image was asked to "
                "be",
                s.images);
  NUMERAL_CHECK(s.labels.empty() || !s.images.empty(), "--labels needs --images");
  NUMERAL_CHECK(c.guide.empty() || !c.checkpoint.empty(),
                "--guide {}: guides a model that generates; it needs --checkpoint", c.guide);
  NUMERAL_CHECK(s.data.empty() || !s.images.empty(),
                "--data applies to --images only; a diffusion run's own data is used otherwise");
  NUMERAL_CHECK(s.selection.best_of == 1 || s.images.empty(),
                "--best-of selects among generated digits; it does not apply to --images");
}

// The run directory of a checkpoint path (itself if a directory).
std::filesystem::path run_dir_of(const std::filesystem::path& checkpoint) {
  if (std::filesystem::is_directory(checkpoint)) return checkpoint;
  return checkpoint.has_parent_path() ? checkpoint.parent_path() : std::filesystem::path(".");
}

// The directory the reports go to (--out, else <fallback>/eval), owned by this process until the
// command ends, so that two evaluations never mix their files.
struct OutputDir {
  std::filesystem::path path;
  std::unique_ptr<RunDirLock> lock;
};

OutputDir open_output_dir(const std::string& out_flag, const std::filesystem::path& fallback) {
  OutputDir out;
  out.path = out_flag.empty() ? fallback / "eval" : std::filesystem::path(out_flag);
  out.lock = std::make_unique<RunDirLock>(out.path);
  ensure_writable_dir(out.path);
  return out;
}

void say(const std::string& line) {
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

// The classifier, the diffusion model (if any), the data split and the real reference.
struct Loaded {
  TrainedClassifier classifier;
  std::optional<TrainedModel> model;
  DataSplit split;
  RealReference real;
  torch::Device device = torch::kCPU;
};

// Loads the classifier, the diffusion model and the data split, checking that they belong
// together (image size, held-out fingerprints); builds the real reference. The request takes the
// model's own defaults for what the flags left out.
Loaded load_all(EvalCommon& c, const std::string& data_override) {
  Loaded l;
  l.device = select_device(c.runtime.device);
  const int threads = configure_threads(c.runtime.threads);
  l.classifier = load_classifier(c.classifier, l.device);
  DataOptions data = classifier_data_options(l.classifier);
  if (!c.checkpoint.empty()) {
    NUMERAL_CHECK(std::filesystem::exists(c.checkpoint),
                  "--checkpoint {}: no such file or directory", c.checkpoint);
    l.model = load_guided_model(c.checkpoint, c.guide, l.device);
    if (c.command) apply_model_defaults(*c.command, *l.model, c.request);
    check_model_compatible(l.classifier, l.model->config.model, l.model->path.string());
    data = data_options_of(l.model->config);  // the run's split, at its size (the classifier's)
  } else if (!data_override.empty()) {
    data.data = data_override;
  }
  l.split = load_data(data);
  check_classifier_split(l.classifier, l.split);
  bool run_checked = false;
  if (l.model) run_checked = check_run_split(*l.model, l.split);
  const std::string noun = item_noun(l.split.class_names);
  say(fmt::format("classifier {} ({:.2f}% on held-out real {}); device {}, {} threads",
                  l.classifier.path.string(), 100 * l.classifier.val_accuracy, noun, l.device.str(),
                  threads));
  const char* run_note = !l.model      ? ""
                         : run_checked ? " and the run's"
                                       : "; the run records none, its stored data options give "
                                         "this split";
  say(
      fmt::format("reference: {} held-out {} of '{}' ({}; fingerprint {} matches the "
                  "classifier's{})",
                  l.split.val.size(), noun, l.split.name, l.split.split,
                  fingerprint_hex(l.split.val_fingerprint), run_note));
  ClassifierExtractor judge(l.classifier);
  l.real = make_real_reference(judge, l.split, c.request.seed);
  return l;
}

// The sampler a model really runs for these options: a distilled student replaces the default
// with its own steps (options_for), and the reports name what ran.
SamplerOptions sampler_used(const TrainedModel& model, const GenerateOptions& options) {
  return options_for(model, options).sampler;
}

nlohmann::json generation_context(const EvalCommon& c, const Loaded& l) {
  nlohmann::json j;
  if (l.model) {
    const SamplerOptions s = sampler_used(*l.model, c.generate());
    j["checkpoint"] = l.model->path.string();
    j["sampler"] = s.name;
    j["steps"] = s.resolved_steps(l.model->diffusion->T());
    j["eta"] = s.eta;
    j["clip_x0"] = s.clip_x0;
    j["seed"] = c.request.seed;
    if (!c.request.w_interval.empty()) j["w_interval"] = c.request.w_interval;
    if (l.model->guide) {
      j["guide"] = l.model->guide->path.string();
      j["w_guide"] = c.request.w_guide;
    }
    j["training_step"] = l.model->state.value("step", int64_t{0});
    j["precision"] = to_string(c.execution.precision);
  }
  j["device"] = l.device.str();
  return j;
}

SampleSet generate_with_bar(const Loaded& l, int64_t n, const GenerateOptions& options,
                            const Selection& selection = {}) {
  const std::string what =
      selection.best_of > 1 ? fmt::format(", {} candidates each", selection.best_of) : "";
  ProgressBar bar(fmt::format("generating (w = {:g}{})", options.guidance, what),
                  n * selection.best_of, "img");
  SampleSet s = generate_samples(
      *l.model, n, options, [&](int64_t done) { bar.update(done); }, selection);
  bar.finish();
  return s;
}

// The samples a SampleSource names: read (and checked against the classifier) or generated, the
// best of K when selecting. `min_samples`: what the FID needs (feature dimensions).
SampleSet obtain_samples(const EvalCommon& c, const SampleSource& src, const Loaded& l,
                         Ranker* ranker, int64_t min_samples) {
  if (!l.model) {
    SampleSet samples = load_idx_samples(src.images, src.labels);
    check_classifier_input(l.classifier.config, samples.images,
                           fmt::format("the IDX images {}", src.images));
    return samples;
  }
  request_size(src.samples, 1, "--samples");
  NUMERAL_CHECK(src.samples >= min_samples,
                "--samples {}: the FID needs at least as many samples as there are feature "
                "dimensions ({})",
                src.samples, min_samples);
  return generate_with_bar(l, src.samples, c.generate(),
                           ranker ? ranker->selection() : Selection{});
}

// The ranker of --best-of (nothing loaded without it), checked against the model.
std::unique_ptr<Ranker> open_ranker(const EvalCommon& c, const SampleSource& src, const Loaded& l) {
  if (src.selection.best_of == 1 || !l.model) return nullptr;
  auto ranker = std::make_unique<Ranker>(src.selection, c.classifier, l.real.class_names, l.device);
  const auto& m = l.model->config.model;
  ranker->check_images(m.image_size, m.image_channels, m.num_classes);
  return ranker;
}

void run_eval(EvalCommand& cmd) {
  auto& c = cmd.common;
  const auto& src = cmd.source;
  check_source(c, src);
  NUMERAL_CHECK(cmd.cas_epochs >= 0, "--cas-epochs {}: expected at least 0", cmd.cas_epochs);
  if (!src.images.empty()) load_idx_samples(src.images, src.labels);  // bad files fail first
  InterruptScope interrupts;  // SIGINT, SIGTERM: stop at the next sampler step, write nothing
  Loaded l = load_all(c, src.data);
  const OutputDir out = open_output_dir(
      c.out, l.model ? run_dir_of(c.checkpoint) : std::filesystem::path(src.images).parent_path());
  const auto& dir = out.path;
  const auto ranker = open_ranker(c, src, l);
  const int64_t min_samples = l.classifier.config.feature_dim;
  const SampleSet samples = obtain_samples(c, src, l, ranker.get(), min_samples);
  EvalOptions options;
  options.cas = !cmd.no_cas;
  options.cas_epochs = cmd.cas_epochs;
  options.seed = c.request.seed;
  options.print = say;
  const EvalResult result = evaluate_samples(l.classifier, l.real, samples, options);

  Report report = eval_report(result, l.real, samples);
  if (ranker) {
    // What selection buys: the same request without it, judged the same way (no CAS).
    say("best of 1, for comparison:");
    const SampleSet plain = obtain_samples(c, src, l, nullptr, min_samples);
    EvalOptions plain_options = options;
    plain_options.cas = false;
    const EvalResult plain_result = evaluate_samples(l.classifier, l.real, plain, plain_options);
    report.tables.push_back(selection_table(plain_result, plain, result, samples));
  }
  report.images = {{"samples", "samples.png"}};
  report.data.update(generation_context(c, l));
  if (l.model) report.data["guidance"] = c.request.w;
  write_png(dir / "samples.png", samples_grid(samples, l.real.class_names));
  write_file_atomic(dir / "report.json", render_json(report).dump(2) + "\n");
  write_file_atomic(dir / "report.md", render_markdown(report));
  fmt::print("\n{}\nwrote {}/report.json, report.md, samples.png\n", render_text(report),
             dir.string());
}

void run_clip(ClipCommand& cmd) {
  auto& c = cmd.common;
  const auto& src = cmd.source;
  NUMERAL_CHECK(!src.selection.clip_model.empty(),
                "numeral eval clip needs --clip-model DIR: a Hugging Face CLIP model directory "
                "(config.json, model.safetensors, vocab.json + merges.txt), e.g. "
                "openai/clip-vit-base-patch32");
  check_source(c, src);
  InterruptScope interrupts;
  const torch::Device device = select_device(c.runtime.device);
  clip::Clip clip = clip::load_clip(src.selection.clip_model, device);  // missing files fail first
  say(fmt::format("CLIP {}: ViT {}x{} patches of {} px, {} + {} layers, {}-d embeddings",
                  clip.dir.string(), clip.config.vision.image_size / clip.config.vision.patch_size,
                  clip.config.vision.image_size / clip.config.vision.patch_size,
                  clip.config.vision.patch_size, clip.config.vision.num_hidden_layers,
                  clip.config.text.num_hidden_layers, clip.config.projection_dim));
  Loaded l = load_all(c, src.data);
  const OutputDir out = open_output_dir(
      c.out, l.model ? run_dir_of(c.checkpoint) : std::filesystem::path(src.images).parent_path());
  ClipExtractor extractor(clip, l.real.class_names);
  const auto ranker = open_ranker(c, src, l);
  const SampleSet samples = obtain_samples(c, src, l, ranker.get(), extractor.feature_dim());
  const auto start = std::chrono::steady_clock::now();
  say(fmt::format("CLIP: encoding {} digits, {} held-out and {} floor-set real digits",
                  samples.labels.size(0), l.real.val_y.size(0), l.real.floor_y.size(0)));
  const ExtractedFeatures generated = extractor.extract(samples.images);
  const RealFeatures real = real_features(extractor, l.real);
  const ClipScores gen_scores = clip_scores(extractor, generated, samples.labels);
  const ClipScores real_scores = clip_scores(extractor, real.val, l.real.val_y);
  const FidResult fid = fid_against(generated, real);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Report report =
      clip_report(gen_scores, real_scores, fid, l.real.class_names, extractor.prompts(),
                  {{"samples", describe_samples(samples, item_noun(l.real.class_names))},
                   {"reference", describe_reference(l.real)},
                   {"CLIP", fmt::format("{} ({}; scoring took {})", clip.dir.string(),
                                        extractor.feature_space(), format_duration(seconds))}});
  report.data.update(generation_context(c, l));
  report.data["clip_model"] = clip.dir.string();
  report.data["clip_config"] = clip::clip_config_to_json(clip.config);
  write_file_atomic(out.path / "clip.json", render_json(report).dump(2) + "\n");
  write_file_atomic(out.path / "clip.md", render_markdown(report));
  fmt::print("\n{}\nwrote {}/clip.json, clip.md\n", render_text(report), out.path.string());
}

void run_popout(PopoutCommand& cmd) {
  auto& c = cmd.common;
  InterruptScope interrupts;
  Loaded l = load_all(c, "");
  const OutputDir out = open_output_dir(c.out, run_dir_of(c.checkpoint));
  const auto& dir = out.path;
  request_size(cmd.per_class, static_cast<int64_t>(l.real.class_names.size()), "--per-class");
  say(fmt::format("pop-out: {} trajectories per digit, sampler {}, w = {:g}", cmd.per_class,
                  c.request.sampler.name, c.request.w));
  const PopoutResult result = popout(*l.model, l.classifier.model, cmd.per_class, c.generate());
  Report report = popout_report(
      result, l.real.class_names,
      {{"model", fmt::format("{} (sampler {}, w = {:g}, seed {})", l.model->path.string(),
                             c.request.sampler.name, c.request.w, c.request.seed)},
       {"judge", describe_judge(l.real)}});
  report.images = {{"curves", "popout.png"}};
  if (result.strip.defined()) report.images.emplace_back("x0 estimates", "popout-strip.png");
  report.data.update(generation_context(c, l));
  report.data["guidance"] = c.request.w;
  report.data["classifier"] = l.classifier.path.string();
  write_png(dir / "popout.png", popout_plot(result, l.real.class_names));
  if (result.strip.defined()) {
    write_png(dir / "popout-strip.png", popout_strip(result, l.real.class_names));
  }
  write_file_atomic(dir / "popout.json", render_json(report).dump(2) + "\n");
  write_file_atomic(dir / "popout.md", render_markdown(report));
  fmt::print("\n{}\nwrote {}/popout.json, popout.md, popout.png{} ({})\n", render_text(report),
             dir.string(), result.strip.defined() ? ", popout-strip.png" : "",
             format_duration(result.seconds));
}

void run_sweep(SweepCommand& cmd) {
  auto& c = cmd.common;
  NUMERAL_CHECK(!cmd.w.empty(), "--w: expected at least one guidance weight, e.g. 0,0.25,0.5,1,2");
  InterruptScope interrupts;
  Loaded l = load_all(c, "");
  const OutputDir out = open_output_dir(c.out, run_dir_of(c.checkpoint));
  const auto& dir = out.path;
  request_size(cmd.samples, 1, "--samples");
  NUMERAL_CHECK(cmd.samples >= l.classifier.config.feature_dim,
                "--samples {}: the FID needs at least as many samples as the classifier has "
                "feature dimensions ({})",
                cmd.samples, l.classifier.config.feature_dim);
  EvalOptions options;
  options.cas = false;
  std::vector<SweepRow> rows;
  for (double w : cmd.w) {
    GenerateOptions g = c.generate();
    g.guidance = w;
    const SampleSet samples = generate_with_bar(l, cmd.samples, g);
    SweepRow row;
    row.w = w;
    row.result = evaluate_samples(l.classifier, l.real, samples, options);
    row.seconds = samples.seconds;
    row.images_per_s = samples.images_per_s();
    say(
        fmt::format("w = {:g}: accuracy {:.2f}%  FID {:.3f}  feature diversity {:.3f} (real "
                    "{:.3f})  {:.1f} img/s",
                    w, 100 * row.result.accuracy.overall, row.result.fid.value,
                    row.result.diversity.features_mean, row.result.real_diversity.features_mean,
                    row.images_per_s));
    rows.push_back(std::move(row));
  }
  const SamplerOptions used = sampler_used(*l.model, c.generate());
  Report report = sweep_report(
      rows, l.real,
      {{"generation",
        fmt::format("{} digits per w from {}, sampler {} ({} steps), seed {}{}",
                    with_commas(cmd.samples), l.model->path.string(), used.name,
                    used.resolved_steps(l.model->diffusion->T()), c.request.seed,
                    guidance_additions(c.request.w_interval, c.request.w_guide,
                                       l.model->guide ? l.model->guide->path.string() : ""))},
       {"default w", fmt::format("{:g}, what sample, eval and serve use without --w (the model's "
                                 "file names it with `numeral model export --default-w`)",
                                 l.model->default_w)}});
  report.images = {{"sweep", "sweep.png"}};
  report.data.update(generation_context(c, l));
  report.data["samples"] = cmd.samples;
  report.data["default_w"] = l.model->default_w;
  write_png(dir / "sweep.png", sweep_plot(rows, l.real));
  write_file_atomic(dir / "sweep.json", render_json(report).dump(2) + "\n");
  write_file_atomic(dir / "sweep.md", render_markdown(report));
  fmt::print("\n{}\nwrote {}/sweep.json, sweep.md, sweep.png\n", render_text(report), dir.string());
}

// "10=runs/g10" -> {10, "runs/g10"}.
std::pair<int64_t, std::filesystem::path> parse_low(const std::string& entry) {
  const auto eq = entry.find('=');
  int64_t n = 0;
  try {
    n = eq == std::string::npos ? 0 : std::stoll(entry.substr(0, eq));
  } catch (const std::exception&) {
    n = 0;
  }
  NUMERAL_CHECK(n >= 1 && eq + 1 < entry.size(),
                "--low {}: expected N=RUN, e.g. 100=runs/mnist-100 (a generator trained with "
                "--per-class 100)",
                entry);
  return {n, entry.substr(eq + 1)};
}

void run_augment_command(AugmentCommand& cmd, const CLI::App& command) {
  InterruptScope interrupts;
  const torch::Device device = select_device(cmd.runtime.device);
  const int threads = configure_threads(cmd.runtime.threads);
  for (const auto& entry : cmd.low) cmd.plan.low.push_back(parse_low(entry));
  NUMERAL_CHECK(!cmd.checkpoint.empty() || !cmd.plan.low.empty(),
                "eval augment: give --checkpoint (full data), --low (low data) or both");
  NUMERAL_CHECK(cmd.guide.empty() || !cmd.checkpoint.empty(),
                "--guide {}: autoguides the full-data generator; it needs --checkpoint", cmd.guide);
  std::optional<TrainedModel> generator;
  if (!cmd.checkpoint.empty()) {
    NUMERAL_CHECK(std::filesystem::exists(cmd.checkpoint),
                  "--checkpoint {}: no such file or directory", cmd.checkpoint);
    generator = load_guided_model(cmd.checkpoint, cmd.guide, device);
    apply_model_defaults(command, *generator, cmd.request);
  }
  // The data and split are those the generators trained on: the full-data one's, else the first
  // low-data one's (each generator is checked against them).
  const std::string reference = generator ? cmd.checkpoint : cmd.plan.low.front().second.string();
  const TrainedModel& model = generator ? *generator : load_trained_model(reference, device);
  const DataSplit split = load_data(data_options_of(model.config));
  check_run_split(model, split);
  const OutputDir out = open_output_dir(cmd.out, run_dir_of(reference));
  cmd.plan.generate = generate_options(cmd.request, cmd.execution);
  cmd.plan.cache = out.path / "augment";
  cmd.plan.device = device;
  cmd.plan.validate();
  const std::string generator_name = generator ? generator->path.string() : "none (low data only)";
  say(fmt::format("numeral eval augment  generator {}  device {}, {} threads", generator_name,
                  device.str(), threads));
  say(fmt::format("data: {} ({}); {} training digits, {} held out for testing", split.name,
                  split.split, with_commas(split.train.size()), with_commas(split.val.size())));
  const auto experiments = run_augment(cmd.plan, split, generator ? &*generator : nullptr, say);
  const auto& g = cmd.plan.generate;
  const SamplerOptions used = sampler_used(model, g);
  Report report = augment_report(
      experiments, cmd.plan,
      {{"generator", generator_name},
       {"data", fmt::format("{} ({})", split.name, split.split)},
       {"generation",
        fmt::format("{} {} steps, w = {:g}{}, seed {}", used.name,
                    used.resolved_steps(model.diffusion->T()), g.guidance,
                    guidance_additions(
                        cmd.request.w_interval, generator ? cmd.request.w_guide : 0,
                        generator && generator->guide ? generator->guide->path.string() : ""),
                    g.seed)},
       {"generated digits", (out.path / "augment").string()}});
  report.images = {{"held-out accuracy", "augment.png"}};
  write_png(out.path / "augment.png", augment_plot(experiments));
  write_file_atomic(out.path / "augment.json", render_json(report).dump(2) + "\n");
  write_file_atomic(out.path / "augment.md", render_markdown(report));
  fmt::print("\n{}\nwrote {}/augment.json, augment.md, augment.png\n", render_text(report),
             out.path.string());
}

const bool kRegistered = register_command(/*order=*/80, [](CLI::App& app) {
  auto eval = std::make_shared<EvalCommand>();
  auto* sub = app.add_subcommand(
      "eval", "judge a model's images: accuracy, classifier-FID, CAS, diversity (+ popout, sweep)");
  sub->require_subcommand(0, 1);
  add_common(*sub, eval->common, /*required=*/false);
  add_source_options(*sub, eval->source);
  sub->add_flag("--no-cas", eval->no_cas, "skip CAS (it trains two classifiers)");
  sub->add_option("--cas-epochs", eval->cas_epochs,
                  "epochs of the CAS classifiers (0 = the classifier's own recipe)")
      ->capture_default_str();

  auto clip_cmd = std::make_shared<ClipCommand>();
  auto* clip_sub = sub->add_subcommand(
      "clip", "judge digits with CLIP: CLIPScore, prompt preference, zero-shot accuracy, CLIP-FID");
  add_common(*clip_sub, clip_cmd->common, /*required=*/false);
  add_source_options(*clip_sub, clip_cmd->source);
  clip_sub->callback([clip_cmd] { run_clip(*clip_cmd); });

  auto popout_cmd = std::make_shared<PopoutCommand>();
  auto* popout_sub = sub->add_subcommand(
      "popout", "when each digit appears: classifier probability along the reverse process");
  add_common(*popout_sub, popout_cmd->common, /*required=*/true);
  popout_sub->add_option("--per-class", popout_cmd->per_class, "trajectories per digit")
      ->capture_default_str();
  popout_sub->callback([popout_cmd] { run_popout(*popout_cmd); });

  auto sweep_cmd = std::make_shared<SweepCommand>();
  auto* sweep_sub =
      sub->add_subcommand("sweep", "accuracy, FID and diversity for several guidance weights w");
  add_common(*sweep_sub, sweep_cmd->common, /*required=*/true,
             {"classes", "per_class", "unconditional", "w"});
  sweep_sub->add_option("--w,--guidance", sweep_cmd->w, "guidance weights, e.g. 0,0.25,0.5,1,2")
      ->delimiter(',')
      ->capture_default_str();
  sweep_sub->add_option("--samples", sweep_cmd->samples, "digits to generate per w")
      ->capture_default_str();
  sweep_sub->callback([sweep_cmd] { run_sweep(*sweep_cmd); });

  auto augment_cmd = std::make_shared<AugmentCommand>();
  auto* augment_sub = sub->add_subcommand(
      "augment", "are generated digits worth training on? classifiers with and without them");
  auto& plan = augment_cmd->plan;
  augment_sub->add_option(
      "--checkpoint", augment_cmd->checkpoint,
      "full data: a generator trained on the whole training split (run directory or "
      "checkpoint); without it only the --low experiments run");
  add_guide_option(*augment_sub, augment_cmd->guide);
  augment_sub
      ->add_option("--generated", plan.generated,
                   "full data: generated digits to add to the real ones, e.g. 8000,40000")
      ->delimiter(',')
      ->capture_default_str()
      ->check(at_least(1));
  augment_sub
      ->add_option("--low", augment_cmd->low,
                   "low data: N=RUN for each N real digits per class, RUN a generator trained on "
                   "exactly those (numeral train --per-class N), e.g. 10=runs/g10,100=runs/g100")
      ->delimiter(',');
  augment_sub
      ->add_option("--low-generated", plan.low_generated,
                   "low data: generated digits added in each arm")
      ->capture_default_str()
      ->check(at_least(1));
  augment_sub->add_option("--seeds", plan.seeds, "classifiers per arm (seeds 0, 1, ...)")
      ->capture_default_str()
      ->check(between(1, 100));
  augment_sub
      ->add_option("--classifier-steps", plan.steps,
                   "optimiser steps of every classifier (the same budget in every arm)")
      ->capture_default_str()
      ->check(at_least(1));
  augment_sub->add_option("--rotation", plan.rotation, "classic augmentation: degrees, +-")
      ->capture_default_str();
  augment_sub
      ->add_option("--elastic-alpha", plan.elastic_alpha,
                   "classic augmentation: elastic displacement scale, pixels")
      ->capture_default_str();
  augment_sub
      ->add_option("--elastic-sigma", plan.elastic_sigma,
                   "classic augmentation: elastic smoothing, pixels")
      ->capture_default_str();
  add_request_options(*augment_sub, augment_cmd->request,
                      {"classes", "per_class", "unconditional"});
  add_execution_options(*augment_sub, augment_cmd->execution);
  augment_sub->add_option("--out", augment_cmd->out,
                          "where the report and the generated digits go (default <run dir>/eval)");
  add_runtime_options(*augment_sub, augment_cmd->runtime);
  augment_sub->callback(
      [augment_cmd, augment_sub] { run_augment_command(*augment_cmd, *augment_sub); });

  sub->callback([eval, sub] {
    if (sub->get_subcommands().empty()) run_eval(*eval);
  });
});

}  // namespace
}  // namespace numeral::cli
