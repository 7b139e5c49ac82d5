#include "numeral/clip/pretrained.h"

#include <zlib.h>

#include "numeral/clip/weights.h"
#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/io/safetensors.h"

namespace numeral::clip {
namespace {

bool has_tokenizer(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  return (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) ||
         (fs::exists(dir / "tokenizer/vocab.json") && fs::exists(dir / "tokenizer/merges.txt")) ||
         fs::exists(dir / "bpe_simple_vocab_16e6.txt.gz");
}

}  // namespace

std::string clip_files_help(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> missing;
  if (fs::is_directory(dir)) {
    if (!fs::exists(dir / "config.json")) missing.push_back("config.json");
    if (!fs::exists(dir / "model.safetensors")) {
      missing.push_back(fs::exists(dir / "pytorch_model.bin")
                            ? "model.safetensors (it has pytorch_model.bin: download the "
                              "repository's model.safetensors instead)"
                            : "model.safetensors");
    }
    if (!has_tokenizer(dir)) missing.push_back("vocab.json + merges.txt");
  }
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  if (!fs::is_directory(dir)) list = "";
  return fmt::format(
      "CLIP model directory {} {}: it needs config.json, model.safetensors and the tokenizer "
      "(vocab.json + merges.txt, or OpenAI's bpe_simple_vocab_16e6.txt.gz) of a Hugging Face CLIP "
      "model, e.g. `huggingface-cli download openai/clip-vit-base-patch32 --local-dir {}` (or git "
      "clone https://huggingface.co/openai/clip-vit-base-patch32 with git-lfs); `numeral clip "
      "tiny --out DIR` writes a small random one to try the commands with",
      dir.string(), list.empty() ? "does not exist" : "lacks " + list, dir.string());
}

Clip load_clip(const std::filesystem::path& dir, torch::Device device) {
  namespace fs = std::filesystem;
  NUMERAL_CHECK(fs::is_directory(dir) && fs::exists(dir / "config.json") &&
                    fs::exists(dir / "model.safetensors") && has_tokenizer(dir),
                "{}", clip_files_help(dir));
  const ClipConfig config = read_clip_config(dir / "config.json");
  ClipModel model(config);
  const auto weights = load_safetensors(dir / "model.safetensors");
  load_clip_weights(model, weights, (dir / "model.safetensors").string());
  model->to(device);
  model->eval();
  PreprocessConfig fallback;
  fallback.size = fallback.crop_size = config.vision.image_size;
  PreprocessConfig preprocess = read_preprocess_config(dir / "preprocessor_config.json", fallback);
  NUMERAL_CHECK(preprocess.crop_size == config.vision.image_size,
                "{}: crop_size {} does not match the vision tower's image_size {}",
                (dir / "preprocessor_config.json").string(), preprocess.crop_size,
                config.vision.image_size);
  return Clip{dir, config, model, Tokenizer::load(dir), preprocess, device};
}

torch::Tensor Clip::encode_images(const torch::Tensor& images, int64_t batch_size) {
  NUMERAL_CHECK(batch_size >= 1, "CLIP: batch size {} must be at least 1", batch_size);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += batch_size) {
    const auto batch = images.slice(0, i, std::min(i + batch_size, images.size(0)));
    const auto pixels = clip::preprocess(batch.to(torch::kCPU), preprocess).to(device);
    out.push_back(model->encode_image(pixels).to(torch::kCPU));
  }
  NUMERAL_CHECK(!out.empty(), "CLIP: no images to encode");
  return torch::cat(out);
}

torch::Tensor Clip::encode_texts(const std::vector<std::string>& texts) {
  torch::NoGradGuard no_grad;
  const auto ids = tokenizer.tokenize(texts, config.text.max_position_embeddings, true);
  return model->encode_text(ids.to(device)).to(torch::kCPU);
}

double Clip::logit_scale() const {
  for (const auto& p : model->named_parameters()) {
    if (p.key() == "logit_scale") return std::exp(p.value().item<double>());
  }
  fail("CLIP: the model has no logit_scale");
}

void write_tiny_random_clip(const std::filesystem::path& dir, uint64_t seed) {
  ClipConfig c;
  c.name = "tiny random CLIP";
  for (TowerConfig* t :
       {static_cast<TowerConfig*>(&c.vision), static_cast<TowerConfig*>(&c.text)}) {
    t->hidden_size = 64;
    t->intermediate_size = 128;
    t->num_hidden_layers = 2;
    t->num_attention_heads = 4;
  }
  c.vision.image_size = 32;
  c.vision.patch_size = 8;
  // The byte-level vocabulary with no merges (OpenAI's layout): 256 byte symbols, the same with
  // "</w>", then <|startoftext|> 512 and <|endoftext|> 513.
  c.text.vocab_size = 514;
  c.text.eos_token_id = 513;
  c.projection_dim = 32;
  torch::manual_seed(seed);
  ClipModel model(c);
  save_clip_model(dir, model);
  // OpenAI's tokenizer file: a header line, no merges.
  const auto bpe = dir / "bpe_simple_vocab_16e6.txt.gz";
  const std::string tmp = bpe.string() + ".tmp";
  gzFile f = gzopen(tmp.c_str(), "wb");
  NUMERAL_CHECK(f != nullptr, "{}: cannot write", tmp);
  const std::string header = "\"bpe_simple_vocab_16e6.txt#version: 0.2\n";
  gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
  NUMERAL_CHECK(gzclose(f) == Z_OK, "{}: write failed", tmp);
  std::filesystem::rename(tmp, bpe);
  write_file_atomic(dir / "preprocessor_config.json",
                    nlohmann::json({{"size", {{"shortest_edge", 32}}},
                                    {"crop_size", {{"height", 32}, {"width", 32}}}})
                            .dump(2) +
                        "\n");
}

}  // namespace numeral::clip
