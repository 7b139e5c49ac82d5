#pragma once
// CLIP's byte-level BPE tokenizer (Radford et al. 2021; OpenAI's clip/simple_tokenizer.py, Hugging
// Face's CLIPTokenizer). A text is cleaned (HTML entities unescaped twice, whitespace runs
// collapsed to one space, lower-cased), split by CLIP's regex into words, numbers (one digit each),
// contractions and punctuation runs, and each piece's UTF-8 bytes, written as byte-unicode symbols
// with "</w>" on the last, are merged pair by pair in merge-rank order.
//
// Not done, unlike OpenAI's tokenizer: ftfy.fix_text (mojibake repair, and its NFC normalisation:
// "e" + U+0301 stays two code points where ftfy makes it "é"); HTML5's ~2000 rarer entity names
// (the Latin-1 set and the common typographic ones are unescaped, as are numeric &#..; and &#x..;).
// Lower-casing is Python's str.lower() (PCRE2's simple case mapping of letters, U+0130, Roman
// numerals, circled letters and the final sigma rule done here), up to Unicode version differences
// between PCRE2 and Python. Hugging Face's CLIPTokenizer does not unescape HTML, so "&amp;" gives
// other ids there.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace numeral::clip {

namespace detail {
struct TokenizerData;  // tokenizer.cpp
}

// Copies share the (immutable) vocabulary, merges and compiled regexes; encode() and tokenize() may
// be called from several threads at once.
class Tokenizer {
 public:
  // From a Hugging Face CLIP model directory's vocab.json + merges.txt (the first 48894 merges
  // after the "#version" line, as HF reads them). Every merge's result, the 512 byte symbols (with
  // and without "</w>"), <|startoftext|> and <|endoftext|> must be in the vocabulary.
  static Tokenizer from_hf_files(const std::filesystem::path& vocab_json,
                                 const std::filesystem::path& merges_txt);

  // From OpenAI's bpe_simple_vocab_16e6.txt.gz, building the vocabulary as simple_tokenizer.py
  // does: the 256 byte symbols, the same with "</w>", each of the first 48894 merges joined, then
  // <|startoftext|> and <|endoftext|> (49408 ids for OpenAI's file).
  static Tokenizer from_openai_bpe(const std::filesystem::path& bpe_gz);

  // A model directory: vocab.json + merges.txt in it (or in its tokenizer/ folder, as in Stable
  // Diffusion repositories), else bpe_simple_vocab_16e6.txt.gz in it; `dir` may also be that .gz
  // file. Otherwise a numeral::Error naming the files needed and where they come from.
  static Tokenizer load(const std::filesystem::path& dir);

  // BPE ids of a text, without start and end tokens. "<|startoftext|>" and "<|endoftext|>" in the
  // text become those tokens (as in both references). Throws numeral::Error for invalid UTF-8.
  std::vector<int64_t> encode(const std::string& text) const;

  // The text of ids, "</w>" turned into spaces and the result stripped (HF's decode; OpenAI's
  // keeps the trailing space); special tokens are written out, invalid UTF-8 becomes U+FFFD.
  std::string decode(const std::vector<int64_t>& ids) const;

  // The cleaned text encode() splits: HTML-unescaped, whitespace-collapsed, lower-cased.
  std::string clean(const std::string& text) const;

  // <|startoftext|> ids <|endoftext|>, padded with pad_id(). A text with more than
  // context_length - 2 BPE tokens keeps the first context_length - 2 (then the end token) when
  // `truncate` (OpenAI's clip.tokenize(truncate=True), HF's truncation), else throws
  // numeral::Error naming the text and its token count.
  torch::Tensor tokenize(const std::vector<std::string>& texts, int64_t context_length = 77,
                         bool truncate = true) const;  // [N, context_length] int64

  int64_t start_id() const;  // <|startoftext|>, 49406 in CLIP's vocabulary
  int64_t end_id() const;    // <|endoftext|>, 49407
  // Padding: the end id, as HF's CLIP tokenizers pad (and Stable Diffusion's text conditioning was
  // trained with). OpenAI's clip.tokenize pads with 0: the pooled embedding, read at the first end
  // token under a causal mask, is the same either way; the hidden states after it are not.
  int64_t pad_id() const;
  int64_t vocab_size() const;  // the largest id + 1 (49408)

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerData> data);

  std::shared_ptr<const detail::TokenizerData> data_;  // immutable once built: copies share it
};

}  // namespace numeral::clip
