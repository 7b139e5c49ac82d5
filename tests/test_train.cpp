// The trainer and its checkpoints: the loss falls, resume is exact, and every bad checkpoint is
// refused with a clear message and without changing anything.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/idx.h"
#include "numeral/diffusion/samplers.h"
#include "numeral/inference/pipeline.h"
#include "numeral/io/checkpoint.h"
#include "numeral/io/safetensors.h"
#include "numeral/train/ema.h"
#include "numeral/train/trainer.h"
#include "test_util.h"
#include "tiny_run.h"

namespace numeral {
namespace {

using namespace test;

TrainerOptions options_for(const fs::path& run_dir, bool resume = false) {
  TrainerOptions o;
  o.run_dir = run_dir;
  o.resume = resume;
  return o;
}

TEST(Trainer, LossFallsOnATinyModel) {
  torch::set_num_threads(1);
  RunConfig c = tiny_run();
  c.train.epochs = 12;  // 48 steps
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  Trainer trainer(c, options_for(dir));
  const auto start = std::chrono::steady_clock::now();
  auto result = trainer.run();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(result.history.size(), 12u);
  // Elapsed time is wall time: increasing, and never more than the run took.
  for (size_t i = 1; i < result.history.size(); ++i) {
    EXPECT_GT(result.history[i].elapsed_s, result.history[i - 1].elapsed_s);
  }
  EXPECT_LE(result.history.back().elapsed_s, wall + 0.5);
  EXPECT_EQ(result.steps, 48);
  const double first = result.history.front().train_loss, last = result.history.back().train_loss;
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  EXPECT_LT(result.history.back().val_loss, result.history.front().val_loss);
  // The run directory holds the config, a log line per epoch and a checkpoint.
  EXPECT_TRUE(fs::exists(dir / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  std::ifstream log(dir / "log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("epoch").get<int>(), lines + 1);
    EXPECT_GT(j.at("images_per_s").get<double>(), 0);
  }
  EXPECT_EQ(lines, 12);
}

// The newer training options (EDM preconditioning, a learned schedule) learn too, and what they
// learn comes back from the checkpoint.
TEST(Trainer, EdmAndLearnedScheduleLossesFallAndReload) {
  torch::set_num_threads(1);
  for (const auto& [prediction, schedule] :
       {std::pair{Prediction::edm, Schedule::cosine}, {Prediction::eps, Schedule::learned}}) {
    RunConfig c = tiny_run();
    c.diffusion.prediction = prediction;
    c.diffusion.schedule = schedule;
    c.train.epochs = 12;
    const TempDir scratch;
    Trainer trainer(c, options_for(scratch.path()));
    const auto result = trainer.run();
    const double first = result.history.front().train_loss;
    const double last = result.history.back().train_loss;
    EXPECT_LT(last, 0.7 * first) << prediction << " " << schedule;
    const TrainedModel loaded = load_trained_model(scratch.path(), torch::kCPU);
    EXPECT_TRUE(torch::equal(loaded.diffusion->schedule_f64().alphas_cumprod,
                             trainer.diffusion()->schedule_f64().alphas_cumprod))
        << schedule;
    if (schedule == Schedule::learned) {  // it moved from where it started
      DiffusionConfig start = c.diffusion;
      start.schedule = Schedule::cosine;
      EXPECT_FALSE(torch::allclose(loaded.diffusion->schedule_f64().alphas_cumprod,
                                   NoiseSchedule::from_config(start).alphas_cumprod, 1e-6, 1e-9));
    }
  }
}

TEST(Trainer, ResumeReproducesTheUninterruptedRun) {
  torch::set_num_threads(1);
  const TempDir straight_scratch, split_scratch;
  const fs::path &straight_dir = straight_scratch.path(), &split_dir = split_scratch.path();
  RunConfig c = tiny_run();
  auto straight = Trainer(c, options_for(straight_dir)).run();
  // The same run stopped after 6 steps (inside epoch 2), then resumed in a new Trainer.
  RunConfig first_part = c;
  first_part.train.max_steps = 6;
  auto partial = Trainer(first_part, options_for(split_dir)).run();
  EXPECT_EQ(partial.steps, 6);
  EXPECT_EQ(partial.history.size(), 1u);
  auto resumed = Trainer(c, options_for(split_dir, /*resume=*/true)).run();
  ASSERT_EQ(resumed.history.size(), straight.history.size());
  for (size_t i = 0; i < straight.history.size(); ++i) {
    EXPECT_DOUBLE_EQ(resumed.history[i].train_loss, straight.history[i].train_loss) << i;
    EXPECT_DOUBLE_EQ(resumed.history[i].val_loss, straight.history[i].val_loss) << i;
    EXPECT_DOUBLE_EQ(resumed.history[i].lr, straight.history[i].lr) << i;
  }
  auto a = load_checkpoint(straight_dir, "diffusion"), b = load_checkpoint(split_dir, "diffusion");
  EXPECT_TRUE(a.tensors.at("ema.out_conv2.weight").equal(b.tensors.at("ema.out_conv2.weight")));
}

TEST(Trainer, StopFlagCheckpointsAndResumes) {
  torch::set_num_threads(1);
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  std::atomic<bool> stop{true};
  TrainerOptions o = options_for(dir);
  o.stop = &stop;
  auto result = Trainer(tiny_run(), o).run();
  EXPECT_TRUE(result.interrupted);
  EXPECT_EQ(result.steps, 0);
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  auto resumed = Trainer(tiny_run(), options_for(dir, true)).run();
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.steps, 12);
}

TEST(Trainer, RefusesToOverwriteARun) {
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  RunConfig c = tiny_run();
  c.train.epochs = 1;
  Trainer(c, options_for(dir)).run();
  const auto before = fs::last_write_time(dir / "checkpoint.safetensors");
  EXPECT_ERROR(Trainer again(c, options_for(dir)), "already has a checkpoint; pass --resume");
  EXPECT_EQ(fs::last_write_time(dir / "checkpoint.safetensors"), before);
}

TEST(Trainer, ASecondTrainerOnTheRunDirectoryIsRefused) {
  const TempDir scratch;
  RunConfig c = tiny_run();
  const Trainer first(c, options_for(scratch.path()));
  EXPECT_ERROR(Trainer second(c, options_for(scratch.path())), "in use by another numeral process",
               fmt::format("PID {}", ::getpid()));
}

TEST(Trainer, AStopInsideTheFirstEpochStillWritesTheLog) {
  const TempDir scratch;
  RunConfig c = tiny_run();
  c.train.max_steps = 2;  // 4 steps per epoch
  const auto result = Trainer(c, options_for(scratch.path())).run();
  EXPECT_EQ(result.steps, 2);
  EXPECT_TRUE(fs::exists(scratch / "checkpoint.safetensors"));
  ASSERT_TRUE(fs::exists(scratch / "log.jsonl"));
  EXPECT_EQ(read_file(scratch / "log.jsonl"), "");  // no epoch has ended yet
}

TEST(Trainer, ResumeRefusesDataThatChanged) {
  const TempDir data, run;
  fs::copy(synthetic_dataset(), data.path(), fs::copy_options::recursive);
  RunConfig c = tiny_run();
  c.train.data = data.path().string();
  c.train.max_steps = 2;
  Trainer(c, options_for(run.path())).run();
  // The same directory now holds other labels: another split, another data set.
  write_idx(data / "train-labels-idx1-ubyte",
            torch::arange(80, torch::kLong).add(3).remainder(10).to(torch::kByte));
  EXPECT_ERROR(Trainer resumed(c, options_for(run.path(), /*resume=*/true)),
               "is not what this run trained on");
}

TEST(Trainer, ResumeRefusesAnotherModelAndNamesTheField) {
  const TempDir run;
  RunConfig c = tiny_run();
  c.train.max_steps = 1;
  Trainer(c, options_for(run.path())).run();
  RunConfig wider = c;
  wider.model.channels = {8, 8};
  EXPECT_ERROR(Trainer resumed(wider, options_for(run.path(), /*resume=*/true)),
               "the checkpoint's model has channels [8,16], this run [8,8]; resume with the "
               "stored config");
  RunConfig longer = c;
  longer.diffusion.timesteps += 1;
  EXPECT_ERROR(Trainer resumed(longer, options_for(run.path(), /*resume=*/true)),
               "the checkpoint's diffusion has timesteps");
}

TEST(Trainer, LearningRateWarmsUpThenDecays) {
  RunConfig c = tiny_run();
  c.train.epochs = 10;  // 40 planned steps
  c.train.warmup_steps = 4;
  c.train.lr = 1e-3;
  c.train.lr_min = 1e-5;
  const TempDir scratch;
  const fs::path& dir = scratch.path();
  Trainer trainer(c, options_for(dir));
  EXPECT_DOUBLE_EQ(trainer.learning_rate(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(trainer.learning_rate(3), 1e-3);
  EXPECT_NEAR(trainer.learning_rate(4), 1e-3, 1e-12);
  EXPECT_NEAR(trainer.learning_rate(22), (1e-3 + 1e-5) / 2, 1e-12);  // cosine midpoint
  EXPECT_NEAR(trainer.learning_rate(40), 1e-5, 1e-12);
}

TEST(Trainer, LabelsAreMaskedAtTheConfiguredRate) {
  auto gen = make_generator(3);
  auto labels = torch::full({100000}, 4, torch::kLong);
  auto masked = drop_labels(labels, 0.1, gen);
  const double rate = masked.eq(kNullLabel).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(rate, 0.1, 0.005);
  EXPECT_TRUE(masked.eq(kNullLabel).logical_or(masked.eq(4)).all().item<bool>());
  EXPECT_EQ(drop_labels(labels, 0.0, gen).eq(kNullLabel).sum().item<int64_t>(), 0);
  EXPECT_EQ(drop_labels(labels, 1.0, gen).eq(kNullLabel).sum().item<int64_t>(), 100000);
}

TEST(TrainConfig, RejectsBadValues) {
  TrainConfig c;
  c.epochs = 0;
  EXPECT_THROW(c.validate(), Error);
  c = TrainConfig{};
  c.cond_drop_prob = 1.5;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_ERROR(parse_enum<Optimizer>("sgd", "optimizer"), "optimizer sgd: expected adam or adamw");
  c = TrainConfig{};
  c.lr_min = 1.0;  // above lr
  EXPECT_THROW(c.validate(), Error);
  // JSON round trip keeps every field.
  RunConfig r = tiny_run();
  r.train.bf16 = true;
  r.diffusion.min_snr_gamma = 5;
  RunConfig back = nlohmann::json(r).get<RunConfig>();
  EXPECT_EQ(nlohmann::json(back), nlohmann::json(r));
}

// A stored config is read strictly: a missing section is refused, not filled with defaults; an
// unknown field, a wrong type or an out-of-range value names itself.
TEST(RunConfig, StoredConfigIsReadStrictly) {
  const nlohmann::json good = tiny_run();
  auto read = [](const nlohmann::json& j) { return j.get<RunConfig>(); };
  nlohmann::json j = good;
  j.erase("train");
  EXPECT_ERROR(read(j), "run config: no \"train\" section");
  j = good;
  j["model"]["widths"] = {1, 2};
  EXPECT_ERROR(read(j), "model config: unknown field \"widths\"");
  j = good;
  j["diffusion"]["schedule"] = "quadratic";
  EXPECT_ERROR(read(j), "schedule quadratic: expected cosine, linear, linear-textbook or learned");
  j = good;
  j["train"]["lr"] = "fast";
  EXPECT_ERROR(read(j), "lr: expected a number");
  j = good;
  j["model"]["image_size"] = 2;
  EXPECT_ERROR(read(j), "image_size 2: expected at least 4");
  j = good;
  j["model"].erase("guidance_input");  // a field added later: older files keep its default
  EXPECT_FALSE(read(j).model.guidance_input);
}

TEST(EMA, DecayWarmsUpAndAverages) {
  torch::nn::Linear model(1, 1), shadow(1, 1);
  EMA ema(*model, *shadow, 0.9);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.1);
  EXPECT_DOUBLE_EQ(ema.decay_at(1000), 0.9);
  torch::NoGradGuard no_grad;
  model->weight.fill_(1.0);
  shadow->weight.fill_(0.0);
  ema.update(1000);  // shadow = 0.9 * 0 + 0.1 * 1
  EXPECT_NEAR(shadow->weight.item<double>(), 0.1, 1e-7);
}

// --- checkpoint files ------------------------------------------------------------------------

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    RunConfig c = tiny_run();
    c.train.epochs = 1;
    Trainer(c, options_for(dir_)).run();
    path_ = dir_ / "checkpoint.safetensors";
    bytes_ = read_file(path_);
  }
  fs::path write_variant(const std::string& name, const std::string& bytes) {
    auto p = dir_ / name;
    write_file_atomic(p, bytes);
    return p;
  }
  // Loads into a model and checks the error mentions `needle` and the model did not change.
  void expect_refused(const fs::path& p, const std::string& needle) {
    UNet model(tiny_run().model);
    const auto before = module_state(*model, "");
    try {
      auto c = load_checkpoint(p, "diffusion");
      load_module_state(*model, c.tensors, "ema.", p.string());
      ADD_FAILURE() << "expected an error for " << p;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
    for (const auto& [name, t] : module_state(*model, "")) EXPECT_TRUE(t.equal(before.at(name)));
  }
  const TempDir scratch_;
  const fs::path dir_ = scratch_.path();
  fs::path path_;
  std::string bytes_;
};

TEST_F(CheckpointFiles, RoundTripRebuildsTheModelFromTheFileAlone) {
  auto trained = load_trained_model(dir_, torch::kCPU);
  EXPECT_EQ(nlohmann::json(trained.config.model), nlohmann::json(tiny_run().model));
  EXPECT_EQ(trained.state.at("step").get<int64_t>(), 4);
  auto c = load_checkpoint(path_, "diffusion");
  for (const auto& p : trained.model->named_parameters()) {
    EXPECT_TRUE(p.value().equal(c.tensors.at("ema." + p.key()))) << p.key();
  }
  // And the raw (non-EMA) weights on request.
  auto raw = load_trained_model(path_, torch::kCPU, /*ema=*/false);
  EXPECT_TRUE(raw.model->named_parameters()["out_conv2.weight"].equal(
      c.tensors.at("model.out_conv2.weight")));
}

TEST_F(CheckpointFiles, TruncatedFileIsRefused) {
  expect_refused(write_variant("truncated.safetensors", bytes_.substr(0, bytes_.size() / 2)),
                 "truncated.safetensors");
  expect_refused(write_variant("tiny.safetensors", bytes_.substr(0, 5)), "not a safetensors");
  expect_refused(write_variant("empty.safetensors", ""), "not a safetensors");
}

TEST_F(CheckpointFiles, CorruptDataIsRefused) {
  std::string corrupt = bytes_;
  corrupt[corrupt.size() - 3] ^= 0x5a;  // flip bits in the last tensor's data
  expect_refused(write_variant("corrupt.safetensors", corrupt), "CRC-32");
  expect_refused(write_variant("text.safetensors", std::string(64, 'x')), "not a safetensors");
}

TEST_F(CheckpointFiles, AFlippedByteInTheMetadataIsRefused) {
  // The metadata is JSON text inside the header: "timesteps":20 and "step":4 are in there.
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"\\\"timesteps\\\":20", "\\\"timesteps\\\":28"},
        {"\\\"step\\\":4", "\\\"step\\\":5"}}) {
    std::string corrupt = bytes_;
    const auto at = corrupt.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    corrupt.replace(at, from.size(), to);
    expect_refused(write_variant("flipped.safetensors", corrupt), "CRC-32 of the metadata");
  }
}

// Export options of a dtype and, optionally, a default guidance weight.
ExportOptions export_as(const std::string& dtype, std::optional<double> default_w = std::nullopt) {
  ExportOptions o;
  o.dtype = dtype;
  o.default_w = default_w;
  return o;
}

TEST_F(CheckpointFiles, ExportKeepsWhatSamplingNeedsInTheAskedDtype) {
  const fs::path f32 = dir_ / "f32.safetensors", f16 = dir_ / "f16.safetensors";
  export_for_sampling(dir_, f32);
  export_for_sampling(dir_, f16, export_as("float16"));
  const auto full = load_checkpoint(path_, "diffusion"), slim = load_checkpoint(f16, "diffusion");
  EXPECT_FALSE(slim.tensors.count("optimizer"));
  EXPECT_FALSE(slim.tensors.count("model.out_conv2.weight"));
  EXPECT_EQ(slim.tensors.at("ema.out_conv2.weight").scalar_type(), torch::kHalf);
  EXPECT_EQ(slim.state.at("train_fingerprint"), full.state.at("train_fingerprint"));
  EXPECT_EQ(slim.state.at("val_fingerprint"), full.state.at("val_fingerprint"));
  EXPECT_LT(fs::file_size(f16), 0.6 * fs::file_size(f32));
  // Loaded back as float32, within half precision of the original weights.
  const auto a = load_trained_model(f32, torch::kCPU), b = load_trained_model(f16, torch::kCPU);
  for (const auto& p : a.model->named_parameters()) {
    const auto q = b.model->named_parameters()[p.key()];
    EXPECT_EQ(q.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::allclose(q, p.value(), 1e-3, 1e-4)) << p.key();
  }
  EXPECT_ERROR(export_for_sampling(dir_, dir_ / "x.safetensors", export_as("int8")),
               "expected float32, float16 or bfloat16");
}

// A file names the guidance weight it samples with when a request names none; a copy keeps it
// unless told another, and a file whose weight is not a finite number is refused on loading.
TEST_F(CheckpointFiles, ExportWritesTheDefaultGuidanceWeight) {
  const fs::path plain = dir_ / "plain.safetensors", own = dir_ / "own.safetensors",
                 copy = dir_ / "copy.safetensors", other = dir_ / "other.safetensors";
  export_for_sampling(dir_, plain);
  EXPECT_EQ(load_trained_model(plain, torch::kCPU).default_w, kDefaultGuidance);
  EXPECT_EQ(load_trained_model(dir_, torch::kCPU).default_w, kDefaultGuidance);
  const TrainedModel returned = export_for_sampling(dir_, own, export_as("float32", 0.1));
  EXPECT_EQ(returned.path, own);  // the copy as loaded, not the run it came from
  EXPECT_EQ(returned.default_w, 0.1);
  EXPECT_EQ(load_trained_model(own, torch::kCPU).default_w, 0.1);
  EXPECT_EQ(load_checkpoint(own, "diffusion").state.at("default_w"), 0.1);
  export_for_sampling(own, copy);  // a copy of a copy keeps its weight
  EXPECT_EQ(load_trained_model(copy, torch::kCPU).default_w, 0.1);
  export_for_sampling(own, other, export_as("float32", 0.5));
  EXPECT_EQ(load_trained_model(other, torch::kCPU).default_w, 0.5);

  const fs::path refused = dir_ / "refused.safetensors";
  EXPECT_ERROR(export_for_sampling(dir_, refused, export_as("float32", std::nan(""))),
               "default_w nan: expected a finite number");
  EXPECT_FALSE(fs::exists(refused));
  for (const nlohmann::json& bad : {nlohmann::json("0.1"), nlohmann::json(nullptr)}) {
    Checkpoint c = load_checkpoint(own, "diffusion");
    c.state["default_w"] = bad;
    save_checkpoint(refused, c);
    EXPECT_ERROR(
        load_trained_model(refused, torch::kCPU),
        "corrupt checkpoint: default_w " + bad.dump() + " is not a finite guidance weight");
  }
}

// A copy can carry autoguidance's guide: the one file loads with it attached and its own default
// w_guide, a copy of the copy keeps both (in the copy's dtype), and what does not belong together
// is refused before anything is written.
TEST_F(CheckpointFiles, ExportBundlesAGuideWithItsDefaultWeight) {
  const fs::path guide = dir_ / "guide.safetensors", bundle = dir_ / "bundle.safetensors",
                 copy = dir_ / "copy.safetensors", plain = dir_ / "plain.safetensors";
  // The guide: the same run with other weights and step (another model of the same data).
  Checkpoint g = load_checkpoint(path_, "diffusion");
  for (auto& [name, t] : g.tensors) {
    if (name.rfind("ema.", 0) == 0 && t.is_floating_point()) t = t + 0.01;
  }
  g.state["step"] = 2;
  save_checkpoint(guide, g);
  ExportOptions o;
  o.guide = guide;
  o.default_w_guide = 2.0;
  export_for_sampling(dir_, bundle, o);
  export_for_sampling(dir_, plain);
  const TrainedModel m = load_trained_model(bundle, torch::kCPU);
  ASSERT_TRUE(m.guide);
  EXPECT_EQ(m.guide->path, fs::path(bundle.string() + "#guide"));
  EXPECT_EQ(m.default_w_guide, 2.0);
  EXPECT_EQ(m.guide->state.at("step"), 2);
  EXPECT_EQ(m.guide->state.at("train_fingerprint"), g.state.at("train_fingerprint"));
  EXPECT_EQ(m.guide->state.at("exported_from"), guide.string());
  const TrainedModel direct = load_trained_model(guide, torch::kCPU),
                     alone = load_trained_model(plain, torch::kCPU);
  for (const auto& p : direct.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(m.guide->model->named_parameters()[p.key()], p.value())) << p.key();
    EXPECT_TRUE(torch::equal(m.model->named_parameters()[p.key()],
                             alone.model->named_parameters()[p.key()]))
        << p.key();
  }
  EXPECT_FALSE(alone.guide);
  EXPECT_EQ(alone.default_w_guide, 0);
  EXPECT_GT(fs::file_size(bundle), 1.9 * fs::file_size(plain));
  EXPECT_EQ(Pipeline(m, {}).default_request().w_guide, 2.0);
  EXPECT_EQ(Pipeline(alone, {}).default_request().w_guide, 0);

  // A copy of the copy keeps the guide and its weight; --dtype applies to both models.
  export_for_sampling(bundle, copy, export_as("float16"));
  const TrainedModel c = load_trained_model(copy, torch::kCPU);
  ASSERT_TRUE(c.guide);
  EXPECT_EQ(c.default_w_guide, 2.0);
  EXPECT_EQ(c.state.at("exported_from"), path_.string());  // the run, not the first copy
  EXPECT_EQ(c.guide->state.at("exported_from"), guide.string());
  EXPECT_EQ(
      load_checkpoint(copy, "diffusion").tensors.at("guide.ema.out_conv2.weight").scalar_type(),
      torch::kHalf);
  for (const auto& p : direct.model->named_parameters()) {
    EXPECT_TRUE(torch::allclose(c.guide->model->named_parameters()[p.key()], p.value(), 1e-3, 1e-4))
        << p.key();
  }

  // Refused, and nothing written: a default w_guide without a guide or not finite, a guide with
  // another noise schedule.
  const fs::path refused = dir_ / "refused.safetensors";
  ExportOptions bad;
  bad.default_w_guide = 1.0;
  EXPECT_ERROR(export_for_sampling(dir_, refused, bad),
               "default_w_guide 1: the copy has no guide to apply it against (--guide)");
  bad.guide = guide;
  bad.default_w_guide = std::nan("");
  EXPECT_ERROR(export_for_sampling(dir_, refused, bad),
               "default_w_guide nan: expected a finite number");
  Checkpoint longer = g;
  longer.config["diffusion"]["timesteps"] = 40;
  save_checkpoint(dir_ / "longer.safetensors", longer);
  bad.guide = dir_ / "longer.safetensors";
  bad.default_w_guide.reset();
  EXPECT_ERROR(export_for_sampling(dir_, refused, bad),
               "its noise schedule (40 steps) is not the model's (20 steps)");
  EXPECT_FALSE(fs::exists(refused));

  // A file whose bundled guide is broken is refused on loading, naming it.
  Checkpoint broken = load_checkpoint(bundle, "diffusion");
  broken.tensors.erase("guide.ema.out_conv2.weight");
  save_checkpoint(refused, broken);
  EXPECT_ERROR(load_trained_model(refused, torch::kCPU), refused.string() + "#guide");
  broken = load_checkpoint(plain, "diffusion");
  broken.state["default_w_guide"] = 2.0;
  save_checkpoint(refused, broken);
  EXPECT_ERROR(load_trained_model(refused, torch::kCPU),
               "corrupt checkpoint: a default w_guide but no bundled guide");
}

TEST_F(CheckpointFiles, NewerFormatVersionIsRefused) {
  TensorFile file = load_safetensors(path_);
  file.metadata["format_version"] = std::to_string(kCheckpointFormatVersion + 1);
  auto p = dir_ / "newer.safetensors";
  save_safetensors(p, file);
  expect_refused(p, "is newer than this numeral supports");
}

TEST_F(CheckpointFiles, CheckpointOfAnotherModelIsRefused) {
  UNetConfig other = tiny_run().model;
  other.channels = {8, 8};
  UNet model(other);
  const auto before = module_state(*model, "");
  auto c = load_checkpoint(path_, "diffusion");
  try {
    load_module_state(*model, c.tensors, "ema.", path_.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was made for another model"), std::string::npos);
  }
  for (const auto& [name, t] : module_state(*model, "")) EXPECT_TRUE(t.equal(before.at(name)));
}

TEST_F(CheckpointFiles, WrongKindAndMissingFilesAreRefused) {
  EXPECT_THROW(load_checkpoint(path_, "classifier"), Error);
  EXPECT_THROW(load_checkpoint(dir_ / "nope.safetensors", "diffusion"), Error);
  // A plain safetensors file without numeral's metadata.
  TensorFile plain;
  plain.tensors["x"] = torch::ones({2});
  save_safetensors(dir_ / "plain.safetensors", plain);
  expect_refused(dir_ / "plain.safetensors", "not a numeral checkpoint");
}

// --- `numeral train` through the CLI: run directories, signals, resume -------------------------

// The flags of tiny_run() (4 steps per epoch), for `numeral train`.
std::string tiny_train_args(const fs::path& run_dir) {
  return fmt::format(
      "train --data '{}' --channels 8,16 --groups 4 --time-embed-dim 16 --class-embed-dim 16 -T 20 "
      "--batch-size 16 --lr 3e-3 --warmup-steps 2 --val-samples 16 --threads 1 --run-dir '{}'",
      synthetic_dataset().string(), run_dir.string());
}

TEST(TrainCli, ASecondTrainingIntoARunDirectoryIsRefusedAndTheFirstIsIntact) {
  SKIP_WITHOUT_CLI();
  const TempDir scratch;
  const fs::path run = scratch / "run";
  CliProcess first(tiny_train_args(run) + " --epochs 100000 --seed 1", scratch.path(), "first");
  ASSERT_TRUE(first.wait_for_output("model has")) << first.out();  // it holds the directory
  const CliResult second = run_cli(tiny_train_args(run) + " --epochs 1 --seed 2");
  EXPECT_EQ(second.rc, 1);
  EXPECT_EQ(second.err_lines(), 1) << second.err;
  EXPECT_TRUE(contains(second.err, fmt::format("{} is in use by another numeral process (PID {}: ",
                                               run.string(), first.pid())))
      << second.err;
  first.send(SIGTERM);
  const CliResult r = first.wait();
  EXPECT_EQ(r.rc, 143) << r.err;
  // Everything in the directory is the first run's.
  const Checkpoint checkpoint = load_checkpoint(run, "diffusion");
  EXPECT_EQ(checkpoint.config.at("train").at("seed"), 1);
  EXPECT_EQ(nlohmann::json::parse(read_file(run / "config.json")).at("train").at("seed"), 1);
}

TEST(TrainCli, SigtermAndSigintCheckpointExitWith128PlusTheSignalAndResumeExactly) {
  SKIP_WITHOUT_CLI();
  for (const auto& [signal, name, code] :
       {std::tuple{SIGTERM, "SIGTERM", 143}, std::tuple{SIGINT, "SIGINT", 130}}) {
    const TempDir scratch;
    const fs::path run = scratch / "run", straight = scratch / "straight";
    CliProcess training(tiny_train_args(run) + " --epochs 100000", scratch.path());
    ASSERT_TRUE(training.wait_for_output("epoch   1 ")) << training.out();
    training.send(signal);
    const CliResult stopped = training.wait();
    EXPECT_EQ(stopped.rc, code) << stopped.err;
    EXPECT_EQ(stopped.err_lines(), 1) << stopped.err;
    EXPECT_TRUE(
        contains(stopped.err, fmt::format("numeral: stopped by {}: checkpoint of step", name)))
        << stopped.err;
    EXPECT_TRUE(contains(stopped.out, "--resume")) << stopped.out;
    // The checkpoint is whole, and the log is there; no temporary is left.
    const int64_t step = load_checkpoint(run, "diffusion").state.at("step");
    EXPECT_GE(step, 4);
    EXPECT_TRUE(fs::exists(run / "log.jsonl"));
    for (const auto& entry : fs::directory_iterator(run)) {
      EXPECT_FALSE(is_temporary_name(entry.path().filename().string())) << entry.path();
    }
    // Resumed to step + 3, it equals a run that was never stopped.
    const std::string until = fmt::format(" --epochs 100000 --max-steps {}", step + 3);
    const CliResult resumed = run_cli(tiny_train_args(run) + until + " --resume");
    ASSERT_EQ(resumed.rc, 0) << resumed.err;
    EXPECT_TRUE(contains(resumed.out, fmt::format("resumed with --max-steps {} (was 0)", step + 3)))
        << resumed.out;
    ASSERT_EQ(run_cli(tiny_train_args(straight) + until).rc, 0);
    const auto a = load_checkpoint(run, "diffusion"), b = load_checkpoint(straight, "diffusion");
    EXPECT_EQ(a.state.at("step"), step + 3);
    for (const auto& [key, tensor] : b.tensors) {
      if (key.rfind("model.", 0) == 0 || key.rfind("ema.", 0) == 0) {
        EXPECT_TRUE(tensor.equal(a.tensors.at(key))) << key;
      }
    }
  }
}

TEST(TrainCli, ResumeRefusesFlagsThatChangeTheRunAndSaysWhichChanged) {
  SKIP_WITHOUT_CLI();
  const TempDir scratch;
  const fs::path run = scratch / "run";
  ASSERT_EQ(run_cli(tiny_train_args(run) + " --epochs 2 --max-steps 2").rc, 0);
  // Flags left out keep the run's values; a flag given is checked against them.
  const std::string resume = fmt::format("train --run-dir '{}' --resume --threads 1", run.string());
  const std::vector<std::pair<std::string, std::string>> refused = {
      {" --channels 16,32", "--channels is 16,32 here but 8,16 in the run"},
      {" --limit 32", "--limit is 32 here but 0 in the run"},
      {" --lr 0.1", "--lr is 0.1 here but 0.003 in the run"},
      {" --split-seed 3", "--split-seed is 3 here but 0 in the run"},
      {" --schedule linear", "--schedule is linear here but cosine in the run"},
      {" --attention", "--attention is true here but false in the run"},
  };
  const auto before = read_file(run / "checkpoint.safetensors");
  for (const auto& [flag, message] : refused) {
    const CliResult r = run_cli(resume + flag);
    EXPECT_EQ(r.rc, 1) << flag;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_TRUE(contains(r.err, message)) << r.err;
    EXPECT_TRUE(contains(r.err, "may change only --epochs, --max-steps")) << r.err;
  }
  EXPECT_EQ(read_file(run / "checkpoint.safetensors"), before);
  // --data given as the run's own value is no change; the length and cadence may change.
  const CliResult r =
      run_cli(tiny_train_args(run) + " --resume --epochs 3 --max-steps 0 --checkpoint-every 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(contains(r.out,
                       "resumed with --epochs 3 (was 2), --max-steps 0 (was 2), "
                       "--checkpoint-every 2 (was 0)"))
      << r.out;
  EXPECT_EQ(load_checkpoint(run, "diffusion").state.at("step"), 12);
}

TEST(Safetensors, RoundTripKeepsDtypesShapesAndMetadata) {
  TensorFile f;
  f.tensors["a"] = torch::arange(6, torch::kFloat).view({2, 3});
  f.tensors["b"] = torch::tensor({1, -2}, torch::kLong);
  f.tensors["c"] = torch::tensor({7}, torch::kByte);
  f.tensors["empty"] = torch::zeros({0, 4});
  f.metadata["hello"] = "world";
  auto back = from_safetensors(to_safetensors(f), "memory");
  ASSERT_EQ(back.tensors.size(), 4u);
  for (const auto& [k, v] : f.tensors) {
    EXPECT_EQ(back.tensors.at(k).scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(back.tensors.at(k).equal(v)) << k;
  }
  EXPECT_EQ(back.metadata.at("hello"), "world");
  // The header is 8-byte aligned, as the format recommends.
  const std::string bytes = to_safetensors(f);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
}

}  // namespace
}  // namespace numeral
