#include "options.h"

#include <fmt/core.h>

#include "numeral/cli.h"

namespace numeral::cli {

void add_model_options(CLI::App& c, UNetConfig& m) {
  const char* group = "Model";
  c.add_option("--image-size", m.image_size, "image height and width in pixels")
      ->capture_default_str()
      ->group(group);
  c.add_option("--image-channels", m.image_channels, "1 (grey) or 3 (RGB)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--channels", m.channels, "U-Net width per level, e.g. 64,64,128")
      ->delimiter(',')
      ->capture_default_str()
      ->group(group);
  c.add_option("--time-embed-dim", m.time_embed_dim, "sinusoidal time features and MLP width")
      ->capture_default_str()
      ->group(group);
  c.add_option("--class-embed-dim", m.class_embed_dim, "hidden width of the class EmbedBlock")
      ->capture_default_str()
      ->group(group);
  c.add_option("--num-classes", m.num_classes, "number of labels")
      ->capture_default_str()
      ->group(group);
  c.add_option("--groups", m.groups, "GroupNorm groups")->capture_default_str()->group(group);
  c.add_flag("--attention", m.attention, "self-attention at the lowest resolution")->group(group);
  c.add_option("--attention-heads", m.attention_heads, "heads of that attention")
      ->capture_default_str()
      ->group(group);
}

void add_diffusion_options(CLI::App& c, DiffusionConfig& d) {
  const char* group = "Diffusion";
  c.add_option("--timesteps,-T", d.timesteps, "diffusion steps T")
      ->capture_default_str()
      ->group(group);
  c.add_option("--schedule", d.schedule,
               "cosine, linear (rescaled to T), linear-textbook, or learned (starts as cosine; "
               "its shape is trained to minimise the variance of the VLB, as in VDM)")
      ->capture_default_str()
      ->group(group);
  c.add_flag("--zero-terminal-snr", d.zero_terminal_snr,
             "rescale the schedule so abar_T = 0 (needs --prediction v)")
      ->group(group);
  c.add_option("--prediction", d.prediction,
               "what the network predicts: eps, v, or edm (EDM's preconditioned F)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--sigma-data", d.sigma_data, "EDM's sigma_data, for --prediction edm")
      ->capture_default_str()
      ->group(group);
  c.add_option("--min-snr-gamma", d.min_snr_gamma, "Min-SNR-gamma loss weighting (0 = off)")
      ->capture_default_str()
      ->group(group);
}

void add_train_options(CLI::App& c, TrainConfig& t) {
  const char* group = "Training";
  c.add_option("--data", t.data, "mnist, fashion-mnist or a directory of IDX files")
      ->capture_default_str()
      ->group(group);
  c.add_option("--val-fraction", t.val_fraction, "held out when the data has no test split")
      ->capture_default_str()
      ->group(group);
  c.add_option("--split-seed", t.split_seed, "seed of that split")
      ->capture_default_str()
      ->group(group);
  c.add_option("--limit", t.limit, "use only the first N training images (0 = all)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--per-class", t.per_class,
               "then use only the first N training images of each class (0 = all)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--val-samples", t.val_samples, "held-out images for the validation loss (0 = all)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--epochs", t.epochs, "passes over the training images")
      ->capture_default_str()
      ->group(group);
  c.add_option("--max-steps", t.max_steps, "stop after N optimiser steps (0 = no limit)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--batch-size", t.batch_size, "images per step")
      ->capture_default_str()
      ->group(group);
  c.add_option("--optimizer", t.optimizer, "adam or adamw")->capture_default_str()->group(group);
  c.add_option("--lr", t.lr, "peak learning rate")->capture_default_str()->group(group);
  c.add_option("--lr-min", t.lr_min, "final learning rate")->capture_default_str()->group(group);
  c.add_option("--lr-schedule", t.lr_schedule, "cosine, linear or constant after warm-up")
      ->capture_default_str()
      ->group(group);
  c.add_option("--warmup-steps", t.warmup_steps, "linear learning-rate warm-up steps")
      ->capture_default_str()
      ->group(group);
  c.add_option("--weight-decay", t.weight_decay, "AdamW weight decay")
      ->capture_default_str()
      ->group(group);
  c.add_option("--grad-clip", t.grad_clip, "clip the gradient norm (0 = off)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--ema-decay", t.ema_decay, "EMA decay of the sampling weights")
      ->capture_default_str()
      ->group(group);
  c.add_option("--cond-drop-prob", t.cond_drop_prob,
               "probability of masking a label (classifier-free guidance)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--seed", t.seed, "seeds initialisation, data order and noise")
      ->capture_default_str()
      ->group(group);
  c.add_option("--checkpoint-every", t.checkpoint_every,
               "also checkpoint every N steps (0 = each epoch)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--preview-every", t.preview_every, "write a sample grid every N epochs (0 = off)")
      ->capture_default_str()
      ->group(group);
  c.add_flag("--bf16", t.bf16, "bfloat16 autocast (CUDA only)")->group(group);
}

void add_sampler_options(CLI::App& c, SamplerOptions& s) {
  const char* group = "Sampler";
  c.add_option("--sampler", s.name, "ddpm (ancestral), ddim or dpm++2m")
      ->capture_default_str()
      ->group(group);
  // Left out, steps stays 0: the sampler's default (T for ddpm, 25 otherwise).
  c.add_option("--steps", s.steps, "model evaluations (default: T for ddpm, 25 otherwise)")
      ->check(CLI::Validator(
          [](const std::string& value) -> std::string {
            if (value == "0")
              return "--steps 0: expected at least 1 (leave --steps out for the sampler's default)";
            return "";
          },
          "", "at least 1"))
      ->group(group);
  c.add_option("--eta", s.eta, "DDIM stochasticity (0 = deterministic)")
      ->capture_default_str()
      ->group(group);
  c.add_option("--variance", s.variance, "ddpm posterior variance: posterior or beta")
      ->capture_default_str()
      ->group(group);
  c.add_option("--spacing", s.spacing,
               "timesteps: linspace (T-1 .. 0) or trailing (k T / steps - 1; Lin et al. 2023)")
      ->capture_default_str()
      ->group(group);
  c.add_flag("!--no-clip", s.clip_x0, "do not clamp the x_0 estimate to [-1, 1]")->group(group);
}

void add_distill_options(CLI::App& c, DistillConfig& d) {
  const char* group = "Distillation";
  c.add_option("--teacher", d.teacher,
               "the trained model to distil (a checkpoint or run directory)")
      ->group(group);
  c.add_option("--from-steps", d.from_steps,
               "the teacher's DDIM steps (trailing grid) that the first round halves")
      ->capture_default_str()
      ->group(group);
  c.add_option("--to-steps", d.to_steps, "the student's steps after the last round")
      ->capture_default_str()
      ->group(group);
  c.add_option("--round-steps", d.round_steps, "optimiser steps per halving round")
      ->capture_default_str()
      ->group(group);
  c.add_option("--w-min", d.w_min, "smallest guidance weight the student learns")
      ->capture_default_str()
      ->group(group);
  c.add_option("--w-max", d.w_max, "largest guidance weight the student learns")
      ->capture_default_str()
      ->group(group);
}

void add_generate_options(CLI::App& c, GenerateOptions& g) {
  c.add_option("--batch-size", g.batch_size,
               "images sampled together; batch b's noise is seeded by (seed, b), so changing it "
               "changes the images")
      ->capture_default_str()
      ->check(at_least(1));
  c.add_option("--forward-batch", g.forward_batch,
               fmt::format("images per network call (0 = auto: {} on a CPU, whole batches on a "
                           "GPU); changes the speed, not the images",
                           kCpuForwardBatch))
      ->capture_default_str()
      ->check(at_least(0));
}

}  // namespace numeral::cli
