// `numeral clip`: CLIP model directories: `tiny` writes a small random one to try the CLIP
// commands with; `tokenize` prints a text's token ids (to check against another tokenizer).
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "numeral/cli.h"
#include "numeral/clip/pretrained.h"
#include "numeral/clip/tokenizer.h"
#include "numeral/common/error.h"
#include "numeral/common/fs.h"

namespace numeral::cli {
namespace {

struct TinyCommand {
  std::string out;
  uint64_t seed = 0;
};

struct TokenizeCommand {
  std::string model;
  std::vector<std::string> texts;
  int64_t context = 77;
};

const bool kRegistered = register_command(/*order=*/85, [](CLI::App& app) {
  auto* sub = app.add_subcommand("clip", "CLIP model directories: a tiny random one, tokenizing");
  sub->require_subcommand(1);

  auto tiny = std::make_shared<TinyCommand>();
  auto* tiny_sub = sub->add_subcommand(
      "tiny",
      "write a small CLIP with random weights (its scores mean nothing) to try `numeral "
      "eval clip` and `--rank-by clip` without downloading a model");
  tiny_sub->add_option("--out", tiny->out, "the model directory to write")->required();
  tiny_sub->add_option("--seed", tiny->seed, "seeds the weights")->capture_default_str();
  tiny_sub->callback([tiny] {
    check_output_target(tiny->out, "--out");
    clip::write_tiny_random_clip(tiny->out, tiny->seed);
    fmt::print(
        "wrote a tiny random CLIP to {}/ (config.json, model.safetensors, "
        "bpe_simple_vocab_16e6.txt.gz, preprocessor_config.json)\n",
        tiny->out);
  });

  auto tok = std::make_shared<TokenizeCommand>();
  auto* tok_sub = sub->add_subcommand("tokenize", "print the token ids of texts");
  tok_sub
      ->add_option("--clip-model", tok->model,
                   "CLIP model directory (vocab.json + merges.txt, or "
                   "bpe_simple_vocab_16e6.txt.gz)")
      ->required();
  tok_sub->add_option("texts", tok->texts, "texts to tokenize")->required();
  tok_sub->add_option("--context", tok->context, "context length")->capture_default_str();
  tok_sub->callback([tok] {
    const auto tokenizer = clip::Tokenizer::load(tok->model);
    for (const auto& text : tok->texts) {
      const auto ids = tokenizer.tokenize({text}, tok->context)[0];
      std::vector<int64_t> v(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      // Up to and including the first end token; the padding is implied.
      const auto end = std::find(v.begin() + 1, v.end(), tokenizer.end_id());
      v.erase(end == v.end() ? end : end + 1, v.end());
      fmt::print("{}\t{}\n", text, fmt::join(v, " "));
    }
  });
});

}  // namespace
}  // namespace numeral::cli
