#include "numeral/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "numeral/common/error.h"
#include "numeral/common/fields.h"
#include "numeral/common/fs.h"
#include "numeral/common/lock.h"
#include "numeral/common/progress.h"
#include "numeral/io/checkpoint.h"

namespace numeral {
namespace {

constexpr const char* kCheckpointFile = "checkpoint.safetensors";

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& c,
                                                        std::vector<torch::Tensor> params) {
  if (c.optimizer == Optimizer::adam) {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  }
  return std::make_unique<torch::optim::AdamW>(
      params, torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
}

// The per-epoch data order: a permutation seeded by (seed, epoch), independent of other RNG use,
// so a resumed run visits the same batches.
torch::Tensor epoch_permutation(int64_t n, uint64_t seed, int64_t epoch, torch::Device device) {
  auto gen = at::detail::createCPUGenerator(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  return torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong)).to(device);
}

// bfloat16 autocast on CUDA for the forward pass and loss, in scope; a no-op when disabled.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
#endif
  }
  ~AutocastGuard() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
};

}  // namespace

Trainer::Trainer(RunConfig config, TrainerOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  config_.diffusion.validate();
  config_.train.validate();
  const auto& tc = config_.train;
  const auto device = options_.device;
  NUMERAL_CHECK(!tc.bf16 || device.is_cuda(),
                "--bf16 needs a CUDA device (this run is on {}); drop --bf16", device.str());

  data_ = load_data(data_options_of(config_));
  resolve_from_data(config_.model, data_);
  config_.model.validate();
  Dataset train = data_.train;
  if (tc.limit > 0 && tc.limit < train.size()) {
    train = Dataset{train.images.slice(0, 0, tc.limit), train.labels.slice(0, 0, tc.limit)};
  }
  if (tc.per_class > 0) train = first_per_class(train, tc.per_class, data_.num_classes);
  train_fingerprint_ = content_fingerprint(train);
  const auto& images = train.images;
  const auto& labels = train.labels;
  const auto& mc = config_.model;
  NUMERAL_CHECK(images.size(1) == mc.image_channels && images.size(2) == mc.image_size &&
                    images.size(3) == mc.image_size,
                "data '{}' has images of {}x{}x{} but the model is configured for {}x{}x{}; set "
                "--image-size/--image-channels",
                tc.data, images.size(2), images.size(3), images.size(1), mc.image_size,
                mc.image_size, mc.image_channels);
  NUMERAL_CHECK(data_.num_classes <= mc.num_classes,
                "data '{}' has {} classes but the model has {}", tc.data, data_.num_classes,
                mc.num_classes);
  // The whole training set lives on the device as one uint8 tensor; batches are index_selects.
  train_x_ = images.to(device);
  train_y_ = labels.to(device);
  const int64_t n_val =
      tc.val_samples > 0 ? std::min(tc.val_samples, data_.val.size()) : data_.val.size();
  NUMERAL_CHECK(n_val > 0, "data '{}' has no held-out images for the validation loss", tc.data);
  // The first n_val held-out images; of a mix, as many of each source as it has up to an even
  // share, so the validation loss weighs the sources alike.
  auto val_index = torch::arange(n_val, torch::kLong);
  if (data_.parts.size() > 1) {
    const int64_t share = (n_val + static_cast<int64_t>(data_.parts.size()) - 1) /
                          static_cast<int64_t>(data_.parts.size());
    std::vector<torch::Tensor> picked;
    for (const auto& part : data_.parts) {
      const auto mine = part.indices_in(data_.val.labels);
      picked.push_back(mine.slice(0, 0, std::min(share, mine.size(0))));
    }
    val_index = torch::cat(picked).slice(0, 0, n_val);
  }
  const int64_t n_val_used = val_index.size(0);
  val_x_ = to_model_range(data_.val.images.index_select(0, val_index)).to(device);
  val_y_ = data_.val.labels.index_select(0, val_index).to(device);
  {
    auto val_gen = at::detail::createCPUGenerator(tc.seed + 7919);
    val_t_ = torch::randint(0, config_.diffusion.timesteps, {n_val_used}, val_gen,
                            torch::TensorOptions().dtype(torch::kLong))
                 .to(device);
    val_noise_ = torch::randn(val_x_.sizes(), val_gen).to(device);
  }

  diffusion_ = std::make_shared<GaussianDiffusion>(config_.diffusion, device);
  objective_ =
      options_.objective ? options_.objective : std::make_shared<DiffusionObjective>(diffusion_);
  torch::manual_seed(tc.seed);
  model_ = UNet(mc);
  ema_model_ = UNet(mc);
  model_->to(device);
  ema_model_->to(device);
  if (!options_.resume && !tc.init_from.empty()) init_from_model(tc.init_from);
  if (!options_.resume) objective_->initialise(model_);
  ema_ = std::make_unique<EMA>(*model_, *ema_model_, tc.ema_decay);
  ema_->copy_from_model();
  ema_model_->eval();
  auto parameters = model_->parameters();
  for (const auto& p : diffusion_->parameters()) parameters.push_back(p);  // a learned schedule
  optimizer_ = make_optimizer(tc, parameters);
  if (device.is_cuda()) {
    generator_ = at::globalContext().defaultGenerator(device);
    generator_.set_current_seed(tc.seed);
  } else {
    generator_ = at::detail::createCPUGenerator(tc.seed);
  }
  epoch_length_ = train_x_.size(0);
  if (data_.parts.size() > 1) {
    const auto cpu_labels = labels.to(torch::kCPU);
    int64_t largest = 0;
    for (const auto& part : data_.parts) {
      const auto mine = part.indices_in(cpu_labels);
      NUMERAL_CHECK(mine.size(0) > 0, "data '{}': no training images from {}", tc.data, part.name);
      largest = std::max(largest, mine.size(0));
      part_indices_.push_back(mine);
    }
    epoch_length_ = largest * static_cast<int64_t>(part_indices_.size());
  }
  global_batch_ = tc.batch_size * (options_.parallel ? options_.parallel->world_size() : 1);
  steps_per_epoch_ = (epoch_length_ + global_batch_ - 1) / global_batch_;
  planned_steps_ = steps_per_epoch_ * tc.epochs;
  total_steps_ = tc.max_steps > 0 ? std::min(planned_steps_, tc.max_steps) : planned_steps_;

  // One writer per run directory, from here to the trainer's end: rank 0 of a group.
  if (is_main()) run_dir_lock_ = std::make_unique<RunDirLock>(options_.run_dir);
  const auto checkpoint_path = options_.run_dir / kCheckpointFile;
  if (options_.resume) {
    restore(checkpoint_path);  // every rank reads the same checkpoint
  } else if (is_main()) {
    NUMERAL_CHECK(!std::filesystem::exists(checkpoint_path),
                  "run directory {} already has a checkpoint; pass --resume to continue it or "
                  "choose another --run-dir",
                  options_.run_dir.string());
  }
  if (options_.parallel) {
    // The same command on the same data, then rank 0's weights everywhere.
    options_.parallel->check_same("config", nlohmann::json(config_).dump());
    options_.parallel->check_same("training data", fmt::format("{:016x}", train_fingerprint_));
    options_.parallel->check_same("step", std::to_string(step_));
    std::vector<torch::Tensor> state;
    for (const auto& module : {model_.ptr(), ema_model_.ptr()}) {
      for (const auto& p : module->parameters()) state.push_back(p.detach());
      for (const auto& b : module->buffers()) state.push_back(b);
    }
    options_.parallel->broadcast(state);
  }
  if (!is_main()) return;
  ensure_writable_dir(options_.run_dir);
  write_file_atomic(options_.run_dir / "config.json", nlohmann::json(config_).dump(2) + "\n");
}

void Trainer::all_reduce_gradients(const torch::Tensor& extras) {
  std::vector<torch::Tensor> grads;
  for (auto& p : model_->parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  for (auto& p : diffusion_->parameters()) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  grads.push_back(extras);
  options_.parallel->all_reduce_sum(grads);
}

Trainer::~Trainer() = default;

void Trainer::init_from_model(const std::string& path) {
  const TrainedModel source = load_trained_model(path, options_.device);
  const std::string origin = fmt::format("--init-from {}", path);
  NUMERAL_CHECK(source.student_steps == 0,
                "{}: a distilled student; start from the model it was distilled from", origin);
  // Its data sources must begin this run's, in order: then its labels mean the same classes here,
  // and the added sources' classes follow them.
  const auto sources = [](const std::string& list) {
    std::vector<std::filesystem::path> parts;
    for (const auto& name : data_source_names(list))
      parts.push_back(std::filesystem::path(name).lexically_normal());
    return parts;
  };
  const auto old_sources = sources(source.config.train.data),
             new_sources = sources(config_.train.data);
  NUMERAL_CHECK(old_sources.size() <= new_sources.size() &&
                    std::equal(old_sources.begin(), old_sources.end(), new_sources.begin()),
                "{}: it was trained on --data {}, which must begin this run's --data {} (e.g. "
                "--data {},NEW: a model keeps its classes while it keeps seeing them)",
                origin, source.config.train.data, config_.train.data, source.config.train.data);
  // It must have held out what this run holds out (else evaluation could test it on images it
  // trained on), and what the weights have seen is its images and this run's.
  const uint64_t old_val = source.state.value("val_fingerprint", uint64_t{0});
  NUMERAL_CHECK(old_val == leading_val_fingerprint(data_.parts, old_sources.size()),
                "{}: it held out other images of {} than this run does (another --split-seed or "
                "--val-fraction?), so it may have trained on this run's held-out images; use its "
                "split options",
                origin, source.config.train.data);
  const uint64_t seen = source.state.value("train_fingerprint", uint64_t{0});
  if (seen != train_fingerprint_)
    train_fingerprint_ = combine_fingerprints(seen, train_fingerprint_);
  const auto old_classes = static_cast<size_t>(source.config.model.num_classes);
  NUMERAL_CHECK(old_classes <= data_.class_names.size(),
                "{}: its {} classes are more than the {} of --data {}", origin, old_classes,
                data_.class_names.size(), config_.train.data);
  const FieldDifference differ = first_difference(source.config.diffusion, config_.diffusion);
  NUMERAL_CHECK(!differ, "{}: its diffusion has {} {}, this run {}", origin, differ.field,
                differ.was, differ.now);
  load_extending_classes(*model_, *source.model, origin);
  torch::NoGradGuard no_grad;
  const auto from = source.diffusion->parameters();
  auto to = diffusion_->parameters();
  for (size_t i = 0; i < from.size() && i < to.size(); ++i) to[i].copy_(from[i]);  // learned
  print(fmt::format("initialised from {} (step {}): {} classes kept, {} added",
                    source.path.string(), source.state.value("step", int64_t{0}), old_classes,
                    data_.class_names.size() - old_classes));
}

void Trainer::print(const std::string& line) const {
  if (options_.print) options_.print(line);
}

double Trainer::learning_rate(int64_t step) const {
  const auto& c = config_.train;
  const int64_t cycle = objective_->cycle_steps();
  if (cycle > 0) step %= cycle;
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / c.warmup_steps;
  if (c.lr_schedule == LrSchedule::constant) return c.lr;
  const double span = std::max<int64_t>(1, (cycle > 0 ? cycle : planned_steps_) - c.warmup_steps);
  const double p = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  if (c.lr_schedule == LrSchedule::linear) return c.lr + (c.lr_min - c.lr) * p;
  return c.lr_min + (c.lr - c.lr_min) * 0.5 * (1 + std::cos(M_PI * p));
}

torch::Tensor Trainer::epoch_order(int64_t epoch) const {
  const auto device = options_.device;
  const uint64_t seed = config_.train.seed;
  if (part_indices_.empty()) return epoch_permutation(train_x_.size(0), seed, epoch, device);
  const int64_t largest = epoch_length_ / static_cast<int64_t>(part_indices_.size());
  std::vector<torch::Tensor> drawn;
  for (size_t p = 0; p < part_indices_.size(); ++p) {
    const auto& mine = part_indices_[p];
    const int64_t count = mine.size(0);
    std::vector<torch::Tensor> rounds;  // each pass over the source in its own order
    for (int64_t r = 0; r * count < largest; ++r) {
      const uint64_t round_seed = seed * 7919 + (p + 1) * 104729 + static_cast<uint64_t>(r);
      rounds.push_back(
          mine.index_select(0, epoch_permutation(count, round_seed, epoch, torch::kCPU)));
    }
    drawn.push_back(torch::cat(rounds).slice(0, 0, largest));
  }
  const auto all = torch::cat(drawn);
  return all.index_select(0, epoch_permutation(all.size(0), seed, epoch, torch::kCPU)).to(device);
}

double Trainer::validation_loss() {
  torch::NoGradGuard no_grad;
  double sum = 0;
  const int64_t n = val_x_.size(0), batch = 256;
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t j = std::min(n, i + batch);
    auto loss = objective_->loss(ema_model_, val_x_.slice(0, i, j), val_y_.slice(0, i, j),
                                 val_t_.slice(0, i, j), val_noise_.slice(0, i, j),
                                 /*generator=*/nullptr);
    sum += loss.item<double>() * static_cast<double>(j - i);
  }
  return sum / static_cast<double>(n);
}

void Trainer::save_checkpoint_now() {
  if (!is_main()) return;
  Checkpoint c;
  c.kind = objective_->checkpoint_kind();
  c.config = config_;
  nlohmann::json history = nlohmann::json::array();
  for (const auto& h : history_) history.push_back(h);
  c.state = {{"step", step_},
             {"epoch_loss_sum", epoch_loss_sum_},
             {"epoch_loss_count", epoch_loss_count_},
             {"elapsed_s", elapsed_seconds()},
             {"history", history},
             {"val_fingerprint", data_.val_fingerprint},
             {"train_fingerprint", train_fingerprint_},
             {"class_names", data_.class_names},
             {"torch_version", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR,
                                           TORCH_VERSION_PATCH)}};
  c.tensors = module_state(*model_, "model.");
  for (auto& [name, t] : module_state(*ema_model_, "ema.")) c.tensors.emplace(name, t);
  for (auto& [name, t] : diffusion_->schedule_state()) c.tensors.emplace(name, t);
  std::ostringstream optimizer_bytes;
  torch::serialize::OutputArchive archive;
  optimizer_->save(archive);
  archive.save_to(optimizer_bytes);
  c.tensors["optimizer"] = bytes_to_tensor(optimizer_bytes.str());
  c.tensors["rng"] = generator_.get_state();
  objective_->save(c);
  save_checkpoint(options_.run_dir / kCheckpointFile, c);
  write_log();  // never ahead of the checkpoint, and there from the first save on
}

void Trainer::restore(const std::filesystem::path& path) {
  const Checkpoint c = load_checkpoint(path, objective_->checkpoint_kind());
  const RunConfig stored = c.config;
  for (const auto& [part, was, now] :
       {std::tuple{"model", nlohmann::json(stored.model), nlohmann::json(config_.model)},
        std::tuple{"diffusion", nlohmann::json(stored.diffusion),
                   nlohmann::json(config_.diffusion)}}) {
    const FieldDifference differ = first_difference(was, now);
    NUMERAL_CHECK(!differ,
                  "{}: the checkpoint's {} has {} {}, this run {}; resume with the stored config",
                  path.string(), part, differ.field, differ.was, differ.now);
  }
  // A fine-tuned run's fingerprint counts its source model's images too (init_from_model).
  if (!config_.train.init_from.empty() && c.state.contains("train_fingerprint")) {
    train_fingerprint_ = c.state.at("train_fingerprint").get<uint64_t>();
  }
  if (c.state.contains("val_fingerprint")) {
    NUMERAL_CHECK(c.state.at("val_fingerprint").get<uint64_t>() == data_.val_fingerprint,
                  "{}: the data '{}' is not what this run trained on (its held-out split "
                  "differs); resume with the run's data, or start a new run",
                  path.string(), config_.train.data);
  }
  for (const char* key : {"optimizer", "rng"}) {
    NUMERAL_CHECK(c.tensors.count(key), "{}: corrupt checkpoint: no '{}' state", path.string(),
                  key);
  }
  // Validate both modules before changing either.
  UNet probe(config_.model);
  load_module_state(*probe, c.tensors, "model.", path.string());
  load_module_state(*probe, c.tensors, "ema.", path.string());
  load_module_state(*model_, c.tensors, "model.", path.string());
  load_module_state(*ema_model_, c.tensors, "ema.", path.string());
  diffusion_->load_schedule_state(c.tensors, path.string());
  objective_->restore(c, path.string());
  std::istringstream optimizer_bytes(tensor_to_bytes(c.tensors.at("optimizer")));
  torch::serialize::InputArchive archive;
  archive.load_from(optimizer_bytes, options_.device);
  optimizer_->load(archive);
  generator_.set_state(c.tensors.at("rng"));
  step_ = c.state.at("step");
  epoch_loss_sum_ = c.state.at("epoch_loss_sum");
  epoch_loss_count_ = c.state.at("epoch_loss_count");
  elapsed_before_ = c.state.at("elapsed_s");
  history_ = c.state.at("history").get<std::vector<EpochStats>>();
  print(fmt::format("resumed {} at step {} (epoch {})", path.string(), step_,
                    step_ / steps_per_epoch_ + 1));
}

double Trainer::elapsed_seconds() const {
  return elapsed_before_ +
         std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start_).count();
}

void Trainer::write_log() {
  if (!is_main()) return;
  std::string lines;
  for (const auto& h : history_) lines += nlohmann::json(h).dump() + "\n";
  write_file_atomic(options_.run_dir / "log.jsonl", lines);
}

TrainResult Trainer::run() {
  const auto& tc = config_.train;
  const auto device = options_.device;
  const int64_t n = epoch_length_;
  const auto& mc = config_.model;
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);
  session_start_ = std::chrono::steady_clock::now();
  TrainResult result;
  // Losses not yet read back from the device.
  constexpr int64_t kSyncEvery = 50;
  auto pending_loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  int64_t pending_steps = 0;
  auto flush_loss = [&] {
    if (pending_steps == 0) return;
    const double sum = pending_loss.item<double>();
    NUMERAL_CHECK(std::isfinite(sum),
                  "training diverged: loss is {} at or before step {}; lower --lr or raise "
                  "--grad-clip",
                  sum, step_);
    epoch_loss_sum_ += sum;
    epoch_loss_count_ += pending_steps;
    pending_loss.zero_();
    pending_steps = 0;
  };
  // A group stops together: each step's all-reduce carries every rank's stop flag.
  bool group_stop = false;
  auto stop_requested = [&] {
    if (options_.parallel) return group_stop;
    return options_.stop != nullptr && options_.stop->load();
  };
  model_->train();
  while (step_ < total_steps_) {
    const int64_t epoch = step_ / steps_per_epoch_;  // 0-based
    const int64_t first = step_ % steps_per_epoch_;
    const int64_t last = std::min(steps_per_epoch_, total_steps_ - epoch * steps_per_epoch_);
    const auto perm = epoch_order(epoch);
    const int64_t epochs = (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_;
    ProgressBar bar(fmt::format("epoch {}/{}", epoch + 1, epochs), last, "img");
    const auto epoch_start = std::chrono::steady_clock::now();
    int64_t epoch_images = 0;
    for (int64_t i = first; i < last; ++i) {
      if (stop_requested()) {
        flush_loss();
        save_checkpoint_now();
        result.interrupted = true;
        result.steps = step_;
        result.history = history_;
        return result;
      }
      // The global batch; every rank draws its times, noise and label masks (the same random
      // stream everywhere), then takes its own shard, so a group trains as one process would.
      auto idx = perm.slice(0, i * global_batch_, std::min(n, (i + 1) * global_batch_));
      const int64_t b = idx.size(0);
      auto labels = train_y_.index_select(0, idx);
      auto t = torch::randint(0, config_.diffusion.timesteps, {b}, generator_, long_options);
      auto noise = torch::randn({b, mc.image_channels, mc.image_size, mc.image_size}, generator_,
                                float_options);
      labels = drop_labels(labels, tc.cond_drop_prob, generator_);
      int64_t shard = b;
      if (options_.parallel) {
        const int64_t per_rank =
            (b + options_.parallel->world_size() - 1) / options_.parallel->world_size();
        const int64_t lo = std::min(b, options_.parallel->rank() * per_rank);
        const int64_t hi = std::min(b, lo + per_rank);
        shard = hi - lo;
        idx = idx.slice(0, lo, hi);
        labels = labels.slice(0, lo, hi);
        t = t.slice(0, lo, hi);
        noise = noise.slice(0, lo, hi);
      }
      const auto x0 = to_model_range(train_x_.index_select(0, idx));
      objective_->begin_step(step_, model_, ema_model_);

      const double lr = learning_rate(step_);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
      optimizer_->zero_grad();
      torch::Tensor loss;
      if (shard > 0) {
        AutocastGuard autocast(tc.bf16);
        loss = objective_->loss(model_, x0, labels, t, noise, &generator_);
      }
      if (options_.parallel) {
        // This shard's part of the global batch's mean; the sum over ranks is the mean.
        if (shard > 0) {
          loss = loss * (static_cast<double>(shard) / static_cast<double>(b));
          loss.backward();
        }
        const bool stop = options_.stop != nullptr && options_.stop->load();
        auto extras = torch::zeros({2}, float_options);
        if (shard > 0) extras[0].copy_(loss.detach());
        extras[1].fill_(stop ? 1.0 : 0.0);
        all_reduce_gradients(extras);
        loss = extras[0];
        group_stop = extras[1].item<float>() > 0;
      } else {
        loss.backward();
      }
      if (tc.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), tc.grad_clip);
      optimizer_->step();
      diffusion_->refresh_schedule();
      const int64_t cycle = objective_->cycle_steps();
      ema_->update(cycle > 0 ? step_ % cycle : step_);
      ++step_;
      // Reading the loss syncs with the device: every step on the CPU (free), every
      // kSyncEvery steps on CUDA so the GPU is never starved.
      pending_loss += loss.detach().to(torch::kDouble);
      ++pending_steps;
      if (!device.is_cuda() || step_ % kSyncEvery == 0) flush_loss();
      epoch_images += b;
      if (epoch_loss_count_ > 0) {
        bar.update(i + 1,
                   fmt::format("loss {:.4f} lr {:.2e}", epoch_loss_sum_ / epoch_loss_count_, lr));
      }
      if (tc.checkpoint_every > 0 && step_ % tc.checkpoint_every == 0 && i + 1 < last) {
        flush_loss();
        save_checkpoint_now();
      }
    }
    flush_loss();
    if (last < steps_per_epoch_) {  // --max-steps ended the run inside an epoch
      save_checkpoint_now();
      print(fmt::format("stopped at --max-steps {} inside epoch {}; checkpoint saved", step_,
                        epoch + 1));
      break;
    }
    const double epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.step = step_;
    stats.train_loss = epoch_loss_sum_ / std::max<int64_t>(1, epoch_loss_count_);
    stats.val_loss = validation_loss();
    stats.lr = learning_rate(step_ - 1);
    stats.images_per_s = static_cast<double>(epoch_images) / std::max(1e-9, epoch_seconds);
    stats.elapsed_s = elapsed_seconds();
    bar.finish(fmt::format("loss {:.4f} val {:.4f}", stats.train_loss, stats.val_loss));
    history_.push_back(stats);
    epoch_loss_sum_ = 0;
    epoch_loss_count_ = 0;
    save_checkpoint_now();
    print(
        fmt::format("epoch {:>3} step {:>6}  train {:.4f}  val {:.4f}  lr {:.2e}  {:.1f} img/s  {}",
                    stats.epoch, stats.step, stats.train_loss, stats.val_loss, stats.lr,
                    stats.images_per_s, format_duration(stats.elapsed_s)));
    if (options_.on_epoch) options_.on_epoch(stats);
    model_->train();
  }
  result.steps = step_;
  result.history = history_;
  return result;
}

torch::Tensor DiffusionObjective::loss(UNet& model, const torch::Tensor& x0,
                                       const torch::Tensor& labels, const torch::Tensor& t,
                                       const torch::Tensor& noise, at::Generator* /*generator*/) {
  auto network = [&](const torch::Tensor& x, const torch::Tensor& time, const torch::Tensor& y) {
    return model->forward(x, time, y);
  };
  return diffusion_->training_loss(network, x0, labels, t, noise);
}

torch::Tensor drop_labels(const torch::Tensor& labels, double p, at::Generator& generator) {
  const auto drop = torch::rand({labels.size(0)}, generator,
                                torch::TensorOptions().dtype(torch::kFloat).device(labels.device()))
                        .lt(p);
  return labels.masked_fill(drop, kNullLabel);
}

void resolve_from_data(UNetConfig& model, const DataSplit& data) {
  if (model.image_size == 0) model.image_size = data.train.images.size(2);
  if (model.image_channels == 0) model.image_channels = data.train.images.size(1);
  if (model.num_classes == 0) model.num_classes = data.num_classes;
  if (model.channels.empty()) model.channels = default_widths(model.image_size);
}

}  // namespace numeral
