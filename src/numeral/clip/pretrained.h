#pragma once
// A CLIP model ready to use, from a Hugging Face CLIP model directory: config.json,
// model.safetensors (fp32, fp16 or bf16), the tokenizer (vocab.json + merges.txt, or OpenAI's
// bpe_simple_vocab_16e6.txt.gz) and, if present, preprocessor_config.json.
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "numeral/clip/config.h"
#include "numeral/clip/model.h"
#include "numeral/clip/preprocess.h"
#include "numeral/clip/tokenizer.h"

namespace numeral::clip {

struct Clip {
  std::filesystem::path dir;
  ClipConfig config;
  ClipModel model{nullptr};  // eval mode, on `device`
  Tokenizer tokenizer;
  PreprocessConfig preprocess;
  torch::Device device = torch::kCPU;

  // Projected image embeddings of images [N, C, H, W] in [-1, 1] (any size, 1 or 3 channels):
  // preprocessed, then encoded `batch_size` at a time. -> [N, P] float on the CPU.
  torch::Tensor encode_images(const torch::Tensor& images, int64_t batch_size = 64);
  // Projected text embeddings: tokenized to the model's context (truncated) -> [T, P] on the CPU.
  torch::Tensor encode_texts(const std::vector<std::string>& texts);
  // exp(logit_scale), the temperature of the model's logits.
  double logit_scale() const;
};

// Loads a model directory onto `device`. A directory missing files is a numeral::Error that names
// every missing file and where to get a model (clip_files_help).
Clip load_clip(const std::filesystem::path& dir, torch::Device device = torch::kCPU);

// What a CLIP model directory must hold, which of it `dir` lacks, and where models come from.
std::string clip_files_help(const std::filesystem::path& dir);

// Writes a small CLIP with seeded random weights (2 layers per tower, 32-pixel images) and a
// byte-level tokenizer without merges into `dir`: a model directory to try the CLIP commands on
// without downloading one. Its numbers mean nothing.
void write_tiny_random_clip(const std::filesystem::path& dir, uint64_t seed = 0);

}  // namespace numeral::clip
