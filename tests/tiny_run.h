#pragma once
// A tiny training run on synthetic digits, shared by the trainer's and distillation's tests.
#include <torch/torch.h>

#include "numeral/data/idx.h"
#include "numeral/inference/run_config.h"
#include "numeral/inference/trained_model.h"
#include "test_util.h"

namespace numeral::test {

// 80 synthetic 28x28 "digits": class c is a bright 6x6 square at a class-dependent place. Written
// once per test process, removed at exit.
struct SyntheticDataset : TempDir {
  SyntheticDataset() {
    const int64_t n = 80;
    auto images = torch::zeros({n, 28, 28}, torch::kByte);
    auto labels = torch::arange(n, torch::kLong).remainder(10).to(torch::kByte);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = i % 10, r = 2 + (c / 5) * 12, col = 2 + (c % 5) * 5;
      images[i].slice(0, r, r + 6).slice(1, col, col + 6).fill_(255);
    }
    write_idx(*this / "train-images-idx3-ubyte", images);
    write_idx(*this / "train-labels-idx1-ubyte", labels);
  }
};

inline const fs::path& synthetic_dataset() {
  static const SyntheticDataset dataset;
  return dataset.path();
}

inline RunConfig tiny_run() {
  RunConfig c;
  c.model.channels = {8, 16};
  c.model.groups = 4;
  c.model.time_embed_dim = 16;
  c.model.class_embed_dim = 16;
  c.diffusion.timesteps = 20;
  c.train.data = synthetic_dataset().string();
  c.train.batch_size = 16;  // 64 training images -> 4 steps per epoch
  c.train.epochs = 3;
  c.train.lr = 3e-3;
  c.train.warmup_steps = 2;
  c.train.val_samples = 16;
  return c;
}

// An untrained, tiny diffusion model: enough to run the samplers (popout, generation).
inline TrainedModel tiny_diffusion_model() {
  TrainedModel m;
  m.config.model.channels = {8, 16};
  m.config.model.groups = 4;
  m.config.model.time_embed_dim = 16;
  m.config.model.class_embed_dim = 16;
  m.config.diffusion.timesteps = 10;
  torch::manual_seed(0);
  m.model = UNet(m.config.model);
  m.model->eval();
  m.diffusion = std::make_shared<GaussianDiffusion>(m.config.diffusion, torch::kCPU);
  m.path = "tiny-run/checkpoint.safetensors";
  return m;
}

}  // namespace numeral::test
