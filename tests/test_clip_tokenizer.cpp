// CLIP's BPE tokenizer against ids worked out by hand from a tiny vocabulary (the 512 byte symbols,
// 11 merges, the two special tokens), written both as Hugging Face files and as an OpenAI .gz;
// every malformed file; and OpenAI's real vocabulary against ids its own tokenizer gives.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "numeral/clip/tokenizer.h"
#include "test_util.h"

namespace numeral::clip {
namespace {

using Ids = std::vector<int64_t>;
using numeral::test::TempDir;

// The byte symbols of OpenAI's bytes_to_unicode, in vocabulary order (ids 0..255): the printable
// bytes 0x21-0x7e, 0xa1-0xac, 0xae-0xff as themselves, then the other 68 bytes as U+0100.. So for
// hand-derived ids: a printable ASCII byte b has id b - 33, and b + 223 with "</w>" (id + 256);
// 0xa1-0xac: b - 67; 0xae-0xff: b - 68; bytes 0x00-0x20: 188 + b; 0x7f-0xa0: 221 + (b - 0x7f).
std::vector<std::string> byte_symbols() {
  std::vector<std::pair<int, int>> byte_and_char;
  const auto printable = [](int b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  };
  for (int b = 0; b < 256; ++b) {
    if (printable(b)) byte_and_char.emplace_back(b, b);
  }
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    if (!printable(b)) byte_and_char.emplace_back(b, next++);
  }
  std::vector<std::string> symbols;
  for (const auto& [b, c] : byte_and_char) {
    std::string s;  // c < 0x800: one or two UTF-8 bytes
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    symbols.push_back(s);
  }
  return symbols;
}

// The tiny vocabulary's merges, in rank order; merge k makes id 512 + k.
const std::vector<std::string> kMerges = {
    "h e",         // 512 "he"
    "l l",         // 513 "ll"
    "ll o</w>",    // 514 "llo</w>"
    "he llo</w>",  // 515 "hello</w>"
    "c a",         // 516 "ca"
    "ca t</w>",    // 517 "cat</w>"
    "' s</w>",     // 518 "'s</w>"
    "Ã ©</w>",     // 519 "Ã©</w>": "é" is C3 A9, bytes that stand for themselves (Ã, ©)
    "t h",         // 520 "th"
    "th e</w>",    // 521 "the</w>"
    "a a",         // 522 "aa"
};
constexpr int64_t kStart = 523, kEnd = 524, kVocabSize = 525;

// simple_tokenizer.py's vocabulary of kMerges, as HF's vocab.json has it.
nlohmann::json tiny_vocab_json() {
  nlohmann::json vocab = nlohmann::json::object();
  int64_t id = 0;
  const auto symbols = byte_symbols();
  for (const auto& s : symbols) vocab[s] = id++;
  for (const auto& s : symbols) vocab[s + "</w>"] = id++;
  for (const auto& merge : kMerges) {
    const size_t space = merge.find(' ');
    vocab[merge.substr(0, space) + merge.substr(space + 1)] = id++;
  }
  vocab["<|startoftext|>"] = id++;
  vocab["<|endoftext|>"] = id++;
  return vocab;
}

std::string merges_text(const std::string& header = "#version: 0.2") {
  std::string text = header + "\n";
  for (const auto& merge : kMerges) text += merge + "\n";
  return text;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void write_gzip(const fs::path& path, const std::string& text) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A directory with vocab.json + merges.txt.
void write_hf(const fs::path& dir, const nlohmann::json& vocab = tiny_vocab_json(),
              const std::string& merges = merges_text()) {
  fs::create_directories(dir);
  write_text(dir / "vocab.json", vocab.dump());
  write_text(dir / "merges.txt", merges);
}

// OpenAI's format: the same merges gzipped, behind its odd first line.
void write_openai(const fs::path& gz) {
  write_gzip(gz, merges_text("\"bpe_simple_vocab_16e6.txt#version: 0.2"));
}

class ClipTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override { write_hf(dir_.path()); }
  Tokenizer tokenizer() const {
    return Tokenizer::from_hf_files(dir_ / "vocab.json", dir_ / "merges.txt");
  }
  TempDir dir_;
};

TEST_F(ClipTokenizerTest, SpecialIdsAndSize) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.start_id(), kStart);
  EXPECT_EQ(t.end_id(), kEnd);
  EXPECT_EQ(t.pad_id(), kEnd);
  EXPECT_EQ(t.vocab_size(), kVocabSize);
}

TEST_F(ClipTokenizerTest, MergesInRankOrder) {
  const Tokenizer t = tokenizer();
  // h e l l o</w> -> (h e, rank 0) he l l o</w> -> (l l, 1) he ll o</w> -> (ll o</w>, 2)
  // he llo</w> -> (he llo</w>, 3) hello</w> = 515.
  EXPECT_EQ(t.encode("hello"), Ids({515}));
  // "</w>" joins the last symbol, so "l l</w>" is no merge: he l l</w> = 512, 'l' 75, "l</w>" 331.
  EXPECT_EQ(t.encode("hell"), Ids({512, 75, 331}));
  // Every occurrence of the best pair merges, left to right: a a a a a</w> -> aa aa a</w>; "aa aa"
  // and "aa a</w>" are no merges: 522, 522, "a</w>" 320.
  EXPECT_EQ(t.encode("aaaaa"), Ids({522, 522, 320}));
  // A single letter: 'a' + "</w>" = 97 + 223 = 320 (as in CLIP's real vocabulary).
  EXPECT_EQ(t.encode("a"), Ids({320}));
  // The lowest rank wins, not the leftmost pair: t h e y</w> has "t h" (rank 8) and "h e" (rank 0),
  // so t he y</w>, then no merge: 't' 83, 512, "y</w>" 344. In "the", h e</w> is no pair with a
  // rank, so t h (8) then th e</w> (9): 521.
  EXPECT_EQ(t.encode("they"), Ids({83, 512, 344}));
  EXPECT_EQ(t.encode("the cat"), Ids({521, 517}));
}

TEST_F(ClipTokenizerTest, LongWordWithoutMergesFallsBackToBytes) {
  const Tokenizer t = tokenizer();
  // 'z' is 122: 89, and "z</w>" 345; no merge applies.
  Ids expected(19, 89);
  expected.push_back(345);
  EXPECT_EQ(t.encode(std::string(20, 'z')), expected);
  // s p h i n x</w>: 82, 79, 71, 72, 77, "x</w>" 343 ("h i" is no merge).
  EXPECT_EQ(t.encode("sphinx"), Ids({82, 79, 71, 72, 77, 343}));
}

TEST_F(ClipTokenizerTest, PunctuationRunsAreOnePiece) {
  const Tokenizer t = tokenizer();
  // "hello" 515; "," -> ",</w>" 44 + 223 = 267; "world" w o r l d</w> has no merges:
  // 86, 78, 81, 75, "d</w>" 323; "!" -> "!</w>" 256.
  EXPECT_EQ(t.encode("Hello, World!"), Ids({515, 267, 86, 78, 81, 75, 323, 256}));
  // "!!!" is one piece: '!' 0, '!' 0, "!</w>" 256; "..." likewise: 13, 13, 269.
  EXPECT_EQ(t.encode("hello!!! ..."), Ids({515, 0, 0, 256, 13, 13, 269}));
  // Letters and punctuation split without a space: "cat" 517, "-" -> 45 + 223 = 268, "cat" 517.
  EXPECT_EQ(t.encode("cat-cat"), Ids({517, 268, 517}));
}

TEST_F(ClipTokenizerTest, EachDigitIsItsOwnPiece) {
  const Tokenizer t = tokenizer();
  // "2" -> "2</w>" 50 + 223 = 273, "0</w>" 271, "2</w>" 273, "4</w>" 275.
  EXPECT_EQ(t.encode("2024"), Ids({273, 271, 273, 275}));
  // Letters then digits: "cat" 517, "9</w>" 57 + 223 = 280.
  EXPECT_EQ(t.encode("cat9"), Ids({517, 280}));
}

TEST_F(ClipTokenizerTest, Contractions) {
  const Tokenizer t = tokenizer();
  // "the" 521, "cat" 517, "'s" -> ' s</w> -> 518.
  EXPECT_EQ(t.encode("the cat's"), Ids({521, 517, 518}));
  // "'re" is its own piece with no merges: '\'' 6, 'r' 81, "e</w>" 324; "they" is 83, 512, 344
  // (MergesInRankOrder).
  EXPECT_EQ(t.encode("they're"), Ids({83, 512, 344, 6, 81, 324}));
  // Upper case is lower-cased first: "CAT'S" -> "cat's".
  EXPECT_EQ(t.encode("CAT'S"), Ids({517, 518}));
  // An apostrophe before anything else is punctuation: "'" -> "'</w>" 262, then "cat" 517.
  EXPECT_EQ(t.encode("'cat"), Ids({262, 517}));
}

TEST_F(ClipTokenizerTest, UpperCaseFoldsToLower) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.encode("HELLO"), t.encode("hello"));
  EXPECT_EQ(t.encode("HeLLo CaT"), Ids({515, 517}));
  // Latin-1, Latin Extended-A, Greek (with Python's final sigma), Cyrillic, U+0130.
  EXPECT_EQ(t.clean("ÀÉÎÕÜ ÇÑ ÆØÞ"), "àéîõü çñ æøþ");
  EXPECT_EQ(t.clean("ŁÓDŹ ŒŠŽ"), "łódź œšž");
  EXPECT_EQ(t.clean("ΑΘΗΝΑ ΟΔΟΣ Σ ΣΑ"), "αθηνα οδος σ σα");
  EXPECT_EQ(t.clean("МОСКВА"), "москва");
  EXPECT_EQ(t.clean("İ"), "i\xCC\x87");
  // Final sigma as Python has it: combining marks and word-internal punctuation are skipped, an
  // uncased letter (丹) ends a word.
  EXPECT_EQ(t.clean("ΟΔΟ\u0301Σ ΑΣ.Σ ΑΣ丹 ΑΣΣ"), "οδο\u0301ς ασ.ς ας丹 ασς");
  // Non-letters with a lower case.
  EXPECT_EQ(t.clean("Ⅻ Ⓐ"), "ⅻ ⓐ");
  // Already lower case, digits and symbols stay.
  EXPECT_EQ(t.clean("ß 123 ★"), "ß 123 ★");
}

TEST_F(ClipTokenizerTest, AccentsAreTheirUtf8Bytes) {
  const Tokenizer t = tokenizer();
  // "é" is C3 A9 -> "Ã" "©</w>" -> merge 7 -> 519.
  EXPECT_EQ(t.encode("é"), Ids({519}));
  // c a f Ã ©</w> -> (c a, 4) ca f Ã ©</w> -> (Ã ©</w>, 7) ca f Ã©</w>: 516, 'f' 69, 519.
  EXPECT_EQ(t.encode("café"), Ids({516, 69, 519}));
  // "É" (C3 89) lower-cases to "é".
  EXPECT_EQ(t.encode("CAFÉ"), Ids({516, 69, 519}));
  // "ü" is C3 BC, unmerged: "Ã" 0xc3 - 68 = 127, "¼</w>" 0xbc - 68 + 256 = 376.
  EXPECT_EQ(t.encode("ü"), Ids({127, 376}));
}

TEST_F(ClipTokenizerTest, EmojiIsFourByteSymbols) {
  const Tokenizer t = tokenizer();
  // U+1F642 is F0 9F 99 82: 0xf0 - 68 = 172; 0x9f, 0x99 and 0x82 are not printable:
  // 221 + (b - 0x7f) = 253, 247, and 224 + 256 = 480 with "</w>".
  EXPECT_EQ(t.encode("🙂"), Ids({172, 253, 247, 480}));
  // A letter run then the emoji, a piece of its own.
  EXPECT_EQ(t.encode("cat🙂"), Ids({517, 172, 253, 247, 480}));
}

TEST_F(ClipTokenizerTest, WhitespaceCollapses) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.clean("  Hello \t\n\r  cat  \n"), "hello cat");
  EXPECT_EQ(t.encode("  hello \t\n\r  cat  \n"), Ids({515, 517}));
  // Unicode whitespace too: no-break space, NEL (U+0085), ideographic space.
  EXPECT_EQ(t.clean("hello\u00a0cat\u0085the\u3000cat"), "hello cat the cat");
  EXPECT_EQ(t.encode(" \t\n"), Ids{});
  EXPECT_EQ(t.encode(""), Ids{});
}

TEST_F(ClipTokenizerTest, HtmlEntitiesAreUnescapedTwice) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.clean("a &amp; b"), "a & b");
  EXPECT_EQ(t.clean("&amp;amp;"), "&");  // html.unescape twice, as simple_tokenizer.py does
  EXPECT_EQ(t.clean("&lt;3 &gt; &quot;x&quot; &apos;"), "<3 > \"x\" '");
  EXPECT_EQ(t.clean("caf&eacute; caf&Eacute;"), "café café");
  EXPECT_EQ(t.clean("&#72;&#x45;&#X4c;LO &#39;s"), "hello 's");
  EXPECT_EQ(t.clean("a&nbsp;b"), "a b");
  EXPECT_EQ(t.clean("&hellip; &mdash;"), "… —");
  // Python's edge cases: legacy names without ';' (and as a prefix), Windows-1252 for &#128;..,
  // U+FFFD for 0, surrogates and > U+10FFFF, nothing for control characters, unknown names kept.
  EXPECT_EQ(t.clean("&amp &ampx &notit;"), "& &x ¬it;");
  EXPECT_EQ(t.clean("&#128;&#150;"), "€–");
  EXPECT_EQ(t.clean("&#0;&#xD800;&#x110000;&#99999999999999999999;"), "\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(t.clean("a&#1;b"), "ab");
  EXPECT_EQ(t.clean("&foo; &hellip &Amp; &# &#x; & x"), "&foo; &hellip &amp; &# &#x; & x");
  // Then the ids: "cat&#39;s" is "cat's".
  EXPECT_EQ(t.encode("cat&#39;s"), Ids({517, 518}));
}

// Python's regex module matches U+0345 (COMBINING GREEK YPOGEGRAMMENI) with none of the split
// pattern's alternatives under IGNORECASE, so simple_tokenizer.py drops it; so do we.
TEST_F(ClipTokenizerTest, YpogegrammeniIsDropped) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.encode("cat\u0345the"), Ids({517, 521}));
}

TEST_F(ClipTokenizerTest, SpecialTokensInText) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.encode("hello<|endoftext|>"), Ids({515, kEnd}));
  EXPECT_EQ(t.encode("<|startoftext|> cat"), Ids({kStart, 517}));
  EXPECT_EQ(t.encode("<|ENDOFTEXT|>"), Ids({kEnd}));
}

TEST_F(ClipTokenizerTest, InvalidUtf8IsAnError) {
  const Tokenizer t = tokenizer();
  EXPECT_ERROR(t.encode("caf\xC3"), "not valid UTF-8", "0xc3", "offset 3");
  EXPECT_ERROR(t.encode("\xFF"), "not valid UTF-8", "0xff");
  EXPECT_ERROR(t.encode("a\xC0\xAF"), "not valid UTF-8", "offset 1");  // overlong '/'
  EXPECT_ERROR(t.encode("\xED\xA0\x80"), "not valid UTF-8");           // a surrogate
  EXPECT_ERROR(t.encode("\xF4\x90\x80\x80"), "not valid UTF-8");       // above U+10FFFF
  EXPECT_ERROR(t.tokenize({"ok", "\x80"}), "not valid UTF-8");
}

TEST_F(ClipTokenizerTest, TokenizeLayout) {
  const Tokenizer t = tokenizer();
  const torch::Tensor ids = t.tokenize({"hello", "The cat", ""}, 8);
  ASSERT_EQ(ids.sizes(), (std::vector<int64_t>{3, 8}));
  ASSERT_EQ(ids.scalar_type(), torch::kLong);
  const auto row = [&](int64_t i) {
    const torch::Tensor r = ids[i].contiguous();
    return Ids(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  };
  // <|startoftext|> ids <|endoftext|>, then <|endoftext|> as padding.
  EXPECT_EQ(row(0), Ids({kStart, 515, kEnd, kEnd, kEnd, kEnd, kEnd, kEnd}));
  EXPECT_EQ(row(1), Ids({kStart, 521, 517, kEnd, kEnd, kEnd, kEnd, kEnd}));
  EXPECT_EQ(row(2), Ids({kStart, kEnd, kEnd, kEnd, kEnd, kEnd, kEnd, kEnd}));
  EXPECT_EQ(t.tokenize({}, 77).sizes(), (std::vector<int64_t>{0, 77}));
  EXPECT_EQ(t.tokenize({"cat"}).sizes(), (std::vector<int64_t>{1, 77}));  // the default
  EXPECT_ERROR(t.tokenize({"cat"}, 1), "context_length 1", "at least 2");
}

TEST_F(ClipTokenizerTest, OverLongTextIsTruncatedOrRefused) {
  const Tokenizer t = tokenizer();
  // 100 digits are 100 pieces: "d</w>" = 48 + 223 + d.
  std::string digits;
  for (int i = 0; i < 100; ++i) digits += static_cast<char>('0' + i % 10);
  const torch::Tensor ids = t.tokenize({digits});
  ASSERT_EQ(ids.sizes(), (std::vector<int64_t>{1, 77}));
  EXPECT_EQ(ids[0][0].item<int64_t>(), kStart);
  for (int64_t k = 1; k <= 75; ++k) {  // the first 75 = 77 - 2 digits
    EXPECT_EQ(ids[0][k].item<int64_t>(), 271 + (k - 1) % 10) << "position " << k;
  }
  EXPECT_EQ(ids[0][76].item<int64_t>(), kEnd);  // the end token last, as clip.tokenize(truncate)
  // Exactly 75 fit without truncation; 76 do not.
  EXPECT_NO_THROW(t.tokenize({digits.substr(0, 75)}, 77, false));
  EXPECT_EQ(t.tokenize({digits.substr(0, 75)}, 77, false)[0][76].item<int64_t>(), kEnd);
  EXPECT_ERROR(t.tokenize({digits.substr(0, 76)}, 77, false), "0123456789", "has 76 tokens", "75",
               "context_length 77");
  // A long text is shortened in the message, which stays one line.
  // ("line" is 4 tokens, no merge applies.)
  EXPECT_ERROR(t.tokenize({"line\n" + digits}, 77, false), "line\\x0a0123", "...",
               "has 104 tokens");
}

TEST_F(ClipTokenizerTest, DecodeInvertsEncode) {
  const Tokenizer t = tokenizer();
  // Every piece ends in "</w>", which decodes to a space: a text whose pieces are separated by
  // spaces comes back as its cleaned self.
  for (const std::string text :
       {"Hello World", "the cat 's 2 0 2 4 café", "  CAFÉ\t🙂 sphinx ", "ΟΔΟΣ москва &amp; x",
        "they 're hell aaaaa !!!", "\u00fc\u00e9\u00e8 \u4e2d\u6587"}) {
    EXPECT_EQ(t.decode(t.encode(text)), t.clean(text)) << text;
  }
  // Otherwise pieces come back space-separated, as simple_tokenizer.decode gives them.
  EXPECT_EQ(t.decode(t.encode("Hello, World! it's 2024")), "hello , world ! it 's 2 0 2 4");
  EXPECT_EQ(t.decode({kStart, 515, kEnd, kEnd}), "<|startoftext|>hello <|endoftext|><|endoftext|>");
  // Part of an emoji: F0 9F is one ill-formed sequence, one U+FFFD (Python's errors="replace").
  EXPECT_EQ(t.decode({172, 253}), "\uFFFD");
  EXPECT_EQ(t.decode({}), "");
  EXPECT_ERROR(t.decode({515, kVocabSize}), "id 525", "not in the vocabulary");
  EXPECT_ERROR(t.decode({-1}), "id -1");
}

TEST_F(ClipTokenizerTest, BothLoadersAgree) {
  write_openai(dir_ / "bpe.txt.gz");
  const Tokenizer hf = tokenizer();
  const Tokenizer openai = Tokenizer::from_openai_bpe(dir_ / "bpe.txt.gz");
  EXPECT_EQ(openai.start_id(), kStart);
  EXPECT_EQ(openai.end_id(), kEnd);
  EXPECT_EQ(openai.vocab_size(), kVocabSize);
  const std::vector<std::string> texts = {"Hello, World!", "the cat's 2024 café", "🙂 ΟΔΟΣ",
                                          "aaaaa hell they're", std::string(90, 'x')};
  for (const auto& text : texts) EXPECT_EQ(openai.encode(text), hf.encode(text)) << text;
  EXPECT_TRUE(torch::equal(openai.tokenize(texts), hf.tokenize(texts)));
  EXPECT_EQ(openai.encode("hello café"), Ids({515, 516, 69, 519}));
}

TEST_F(ClipTokenizerTest, LoadFindsTheFiles) {
  // A Hugging Face directory, its tokenizer/ folder (Stable Diffusion's layout), an OpenAI
  // directory and the .gz itself.
  const TempDir root;
  write_hf(root / "hf");
  write_hf(root / "sd" / "tokenizer");
  fs::create_directories(root / "openai");
  write_openai(root / "openai" / "bpe_simple_vocab_16e6.txt.gz");
  for (const fs::path& where : {root / "hf", root / "sd", root / "openai",
                                root / "openai" / "bpe_simple_vocab_16e6.txt.gz"}) {
    const Tokenizer t = Tokenizer::load(where);
    EXPECT_EQ(t.encode("hello café"), Ids({515, 516, 69, 519})) << where;
  }
  fs::create_directories(root / "empty");
  EXPECT_ERROR(Tokenizer::load(root / "empty"), (root / "empty").string(), "vocab.json",
               "merges.txt", "bpe_simple_vocab_16e6.txt.gz", "openai/clip-vit-base-patch32");
  EXPECT_ERROR(Tokenizer::load(root / "missing"), "no such directory");
  fs::create_directories(root / "half");
  write_text(root / "half" / "vocab.json", tiny_vocab_json().dump());
  EXPECT_ERROR(Tokenizer::load(root / "half"), "has vocab.json but not merges.txt");
  EXPECT_ERROR(Tokenizer::load(root / "half" / "vocab.json"), "expected a CLIP model directory");
}

TEST_F(ClipTokenizerTest, CopiesAndThreadsShareOneVocabulary) {
  const Tokenizer original = tokenizer();
  Tokenizer copy = original;
  const Tokenizer moved = std::move(copy);
  EXPECT_EQ(moved.encode("hello cat"), Ids({515, 517}));
  // Several threads encoding at once (the BPE cache is shared) agree with one thread.
  const std::vector<std::string> texts = {"hello", "the cat's", "café 🙂", "aaaaa", "2024 hell"};
  std::vector<Ids> expected;
  for (const auto& text : texts) expected.push_back(original.encode(text));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 200; ++round) {
        const size_t i = (round + w) % texts.size();
        if (moved.encode(texts[i] + " " + texts[(i + 1) % texts.size()]) !=
            original.encode(texts[i] + " " + texts[(i + 1) % texts.size()])) {
          ++mismatches[w];
        }
        if (original.encode(texts[i]) != expected[i]) ++mismatches[w];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---- malformed files: one-line errors naming the file ----

TEST_F(ClipTokenizerTest, BadVocabJson) {
  const fs::path vocab = dir_ / "vocab.json", merges = dir_ / "merges.txt";
  const auto load = [&] { Tokenizer::from_hf_files(vocab, merges); };
  write_text(vocab, "{\"a\": 1,");
  EXPECT_ERROR(load(), vocab.string(), "not valid JSON");
  write_text(vocab, "[1, 2]");
  EXPECT_ERROR(load(), vocab.string(), "expected a JSON object", "array");
  nlohmann::json j = tiny_vocab_json();
  j["hello</w>"] = "515";
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), vocab.string(), "the id of 'hello</w>' is string", "expected an integer");
  j["hello</w>"] = -3;
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), vocab.string(), "the id of 'hello</w>' is -3");
  j = tiny_vocab_json();
  j.erase("Ā");  // byte 0x00's symbol
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), vocab.string(), "lacks the byte symbol 'Ā'", "0x00");
  j = tiny_vocab_json();
  j.erase("<|endoftext|>");
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), vocab.string(), "lacks the special token <|endoftext|>");
  j = tiny_vocab_json();
  j["<|endoftext|>"] = kStart;
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), vocab.string(), "id 523 is given to both");
  j = tiny_vocab_json();
  j.erase("ll");  // made by merge 2, on line 3 of merges.txt
  write_text(vocab, j.dump());
  EXPECT_ERROR(load(), merges.string(), "line 3", "the merge 'l l' makes 'll'", "not in",
               vocab.string());
  fs::remove(vocab);
  EXPECT_ERROR(load(), vocab.string());
}

TEST_F(ClipTokenizerTest, BadMergesTxt) {
  const fs::path vocab = dir_ / "vocab.json", merges = dir_ / "merges.txt";
  const auto load = [&] { Tokenizer::from_hf_files(vocab, merges); };
  // No header line: its first merge would silently be skipped.
  std::string text = merges_text();
  write_text(merges, text.substr(text.find('\n') + 1));
  EXPECT_ERROR(load(), merges.string(), "line 1 'h e'", "#version");
  write_text(merges, "");
  EXPECT_ERROR(load(), merges.string(), "empty merges file");
  write_text(merges, "#version: 0.2\nh e\nl l x\n");
  EXPECT_ERROR(load(), merges.string(), "line 3", "expected a merge", "'l l x'");
  write_text(merges, "#version: 0.2\nh e\n\nl l\n");
  EXPECT_ERROR(load(), merges.string(), "line 3", "expected a merge");
  write_text(merges, "#version: 0.2\nh e\nl \xFF\n");
  EXPECT_ERROR(load(), merges.string(), "line 3", "not valid UTF-8");
  // Windows line ends and trailing blank lines are fine.
  text = merges_text();
  std::string crlf;
  for (const char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_text(merges, crlf + "\r\n\n");
  EXPECT_EQ(Tokenizer::from_hf_files(vocab, merges).encode("hello"), Ids({515}));
  fs::remove(merges);
  EXPECT_ERROR(load(), merges.string());
}

TEST_F(ClipTokenizerTest, BadGzip) {
  const fs::path gz = dir_ / "bpe_simple_vocab_16e6.txt.gz";
  const auto load = [&] { Tokenizer::from_openai_bpe(gz); };
  EXPECT_ERROR(load(), gz.string(), "no such file", "github.com/openai/CLIP");
  write_text(gz, merges_text());  // plain text under a .gz name
  EXPECT_ERROR(load(), gz.string(), "not a gzip file");
  write_openai(gz);
  const std::string good = read_bytes(gz);
  write_text(gz, good.substr(0, good.size() / 2));
  EXPECT_ERROR(load(), gz.string(), "truncated gzip file");
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0x55;  // the CRC-32 trailer
  write_text(gz, bad_crc);
  EXPECT_ERROR(load(), gz.string(), "corrupt gzip data");
  write_gzip(gz, "i n\nt h\n");  // merges without the header line
  EXPECT_ERROR(load(), gz.string(), "line 1 'i n'", "#version");
  write_gzip(gz, "#version: 0.2\ni n\nt\n");
  EXPECT_ERROR(load(), gz.string(), "line 3", "expected a merge");
  EXPECT_ERROR(Tokenizer::from_openai_bpe(dir_.path()), "not a regular file");
}

// The first 48894 merges after the header are used, as both references read them; later lines are
// not even parsed.
TEST_F(ClipTokenizerTest, OnlyTheFirst48894MergesCount) {
  std::string text = "#version: 0.2\n";
  for (int i = 0; i < 48894; ++i) text += "h e\n";  // the same merge again: the later rank
  text += "not a merge at all\n";
  write_gzip(dir_ / "many.gz", text);
  const Tokenizer t = Tokenizer::from_openai_bpe(dir_ / "many.gz");
  EXPECT_EQ(t.vocab_size(), 512 + 48894 + 2);
  EXPECT_EQ(t.end_id(), 512 + 48894 + 1);
  // "he" is the joined string of every merge; Python's dict keeps the last id, 512 + 48893.
  EXPECT_EQ(t.encode("hex"), Ids({512 + 48893, 343}));
}

// OpenAI's vocabulary (49408 tokens): tests/fixtures/clip/bpe_simple_vocab_16e6.txt.gz (MIT, from
// github.com/openai/CLIP), or NUMERAL_CLIP_VOCAB naming another copy or a HF CLIP directory.
std::string real_vocabulary() {
  const char* where = std::getenv("NUMERAL_CLIP_VOCAB");
  if (where != nullptr && *where != '\0') return where;
  return std::string(NUMERAL_SOURCE_DIR) + "/tests/fixtures/clip/bpe_simple_vocab_16e6.txt.gz";
}

// Every text of tests/golden/clip_tokenizer_ids.json gives the ids OpenAI's own
// clip/simple_tokenizer.py gave (bench/clip_tokenizer_reference.py wrote them): punctuation,
// numbers, accents, Greek, Cyrillic, CJK, emoji, HTML entities, a long word, over-long input.
TEST(ClipTokenizerReal, MatchesOpenAIsTokenizer) {
  const Tokenizer t = Tokenizer::load(real_vocabulary());
  std::ifstream in(std::string(NUMERAL_SOURCE_DIR) + "/tests/golden/clip_tokenizer_ids.json");
  const auto golden = nlohmann::json::parse(in);
  ASSERT_GE(golden.at("cases").size(), 20u);
  for (const auto& c : golden.at("cases")) {
    const auto text = c.at("text").get<std::string>();
    const auto ids = c.at("ids").get<Ids>();
    EXPECT_EQ(t.encode(text), ids) << text;
    // tokenize(): start, the first 75 ids, end, padding.
    const torch::Tensor row = t.tokenize({text})[0];
    const size_t kept = std::min<size_t>(ids.size(), 75);
    EXPECT_EQ(row[0].item<int64_t>(), 49406);
    for (size_t i = 0; i < kept; ++i) EXPECT_EQ(row[i + 1].item<int64_t>(), ids[i]) << text;
    EXPECT_EQ(row[kept + 1].item<int64_t>(), 49407) << text;
  }
}

TEST(ClipTokenizerReal, PublishedIds) {
  const std::string where = real_vocabulary();
  const Tokenizer t = Tokenizer::load(where);
  EXPECT_EQ(t.vocab_size(), 49408);
  EXPECT_EQ(t.start_id(), 49406);
  EXPECT_EQ(t.end_id(), 49407);
  // clip.tokenize("a diagram") from OpenAI's README and tests/test_consistency.py:
  // [49406, 320, 22697, 49407, 0, ...] (HF pads with 49407).
  EXPECT_EQ(t.encode("a diagram"), Ids({320, 22697}));
  const torch::Tensor row = t.tokenize({"a diagram"})[0];
  EXPECT_EQ(row[0].item<int64_t>(), 49406);
  EXPECT_EQ(row[1].item<int64_t>(), 320);
  EXPECT_EQ(row[2].item<int64_t>(), 22697);
  EXPECT_EQ(row[3].item<int64_t>(), 49407);
  EXPECT_EQ(row[76].item<int64_t>(), 49407);
  // "a photo of a cat", the prompt of CLIP's zero-shot examples (HF's CLIPModel docs).
  EXPECT_EQ(t.encode("a photo of a cat"), Ids({320, 1125, 539, 320, 2368}));
  // The following were computed with OpenAI's clip/simple_tokenizer.py on its
  // bpe_simple_vocab_16e6.txt.gz (ftfy aside, which leaves these texts alone).
  EXPECT_EQ(t.encode("a dog"), Ids({320, 1929}));
  EXPECT_EQ(t.encode("a cat"), Ids({320, 2368}));
  EXPECT_EQ(t.encode("A photo of a cat."), Ids({320, 1125, 539, 320, 2368, 269}));
  for (const std::string text :
       {"A photo of a cat", "Hello World 2 0 2 4", "café 🙂 ΟΔΟΣ"}) {
    EXPECT_EQ(t.decode(t.encode(text)), t.clean(text)) << text;
  }
}

}  // namespace
}  // namespace numeral::clip
