#include "numeral/clip/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"

namespace numeral::clip {

namespace detail {

// A compiled PCRE2 pattern, freed with its last owner.
using Regex = std::shared_ptr<pcre2_code>;

struct TokenizerData {
  std::unordered_map<std::string, int64_t> encoder;  // token -> id
  std::vector<std::string> decoder;                  // id -> token ("" where no token has the id)
  std::vector<char> known;                           // whether a token has the id
  std::unordered_map<std::string, int32_t> ranks;    // "first second" -> merge rank
  int64_t start_id = 0, end_id = 0;
  Regex whitespace, final_sigma, upper, split;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // piece -> BPE ids
};

}  // namespace detail

namespace {

using detail::Regex;
using detail::TokenizerData;

// simple_tokenizer.py and HF's CLIPTokenizer read this many merges after the header line.
constexpr int64_t kMaxMerges = 49152 - 256 - 2;
constexpr const char* kStartToken = "<|startoftext|>";
constexpr const char* kEndToken = "<|endoftext|>";
constexpr const char* kEndOfWord = "</w>";
constexpr int64_t kMaxId = int64_t{1} << 24;          // larger ids mean a broken vocab.json
constexpr size_t kMaxBpeBytes = size_t{64} << 20;     // OpenAI's file holds 1.6 MiB
constexpr size_t kMaxCacheEntries = size_t{1} << 16;  // then the cache starts over
constexpr const char* kWhereFrom =
    "vocab.json + merges.txt come with a Hugging Face CLIP model (download one such as "
    "openai/clip-vit-base-patch32); bpe_simple_vocab_16e6.txt.gz is in github.com/openai/CLIP, "
    "clip/";

// CLIP's pre-split (simple_tokenizer.py): the special tokens, contractions, runs of letters, single
// digits, runs of anything else but whitespace. U+0345 (COMBINING GREEK YPOGEGRAMMENI) is left out
// of the last class because Python's regex module drops it there: under IGNORECASE it matches none
// of the alternatives.
constexpr const char* kSplitPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+)";
// Python's \s (Unicode White_Space) is PCRE2's \s plus U+0085.
constexpr const char* kWhitespacePattern = R"([\s\x{85}]+)";
// Unicode's Final_Sigma condition, as Python's str.lower() applies it: a capital sigma after a
// cased character (case-ignorable ones between) and not before one. Python's (Unicode 14) sets:
// cased is Lu, Ll, Lt and the Other_Lowercase/Other_Uppercase non-letters; case-ignorable is Mn,
// Me, Cf, Lm, Sk and the word-internal punctuation.
constexpr const char* kCased =
    R"([\p{Lu}\p{Ll}\p{Lt}\x{AA}\x{BA}\x{2160}-\x{217F}\x{24B6}-\x{24E9}\x{1F130}-\x{1F149})"
    R"(\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}])";
constexpr const char* kCaseIgnorable =
    R"([\p{Mn}\p{Me}\p{Cf}\p{Lm}\p{Sk}'.:\x{B7}\x{387}\x{55F}\x{5F4}\x{2018}\x{2019}\x{2024})"
    R"(\x{2027}\x{FE13}\x{FE52}\x{FE55}\x{FF07}\x{FF0E}\x{FF1A}])";

// ---- UTF-8 ----

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The length of the well-formed UTF-8 sequence at s[i] (Unicode's table 3-7) with its code point
// in `cp`, or 0 with the length of its longest ill-formed start in `bad` (at least 1: the span
// Python's errors="replace" turns into one U+FFFD).
size_t utf8_next(std::string_view s, size_t i, uint32_t& cp, size_t& bad) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the second byte's range
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) {
      bad = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xBFu)) {
      bad = k;
      return 0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  return len;
}

// The offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
size_t invalid_utf8_at(std::string_view s) {
  uint32_t cp = 0;
  size_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_next(s, i, cp, bad);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// `s` with each ill-formed UTF-8 span replaced by U+FFFD (Python's decode(errors="replace")).
std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp = 0;
  size_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_next(s, i, cp, bad);
    if (len == 0) {
      append_utf8(out, 0xFFFD);
      i += bad;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// User text for a one-line message: control characters escaped, cut after `max` bytes (on a
// character boundary) with "...". `s` is valid UTF-8.
std::string printable(std::string_view s, size_t max = 48) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (out.size() >= max && (c & 0xC0) != 0x80) return out + "...";
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// ---- bytes_to_unicode ----

// OpenAI's bytes_to_unicode: the 188 printable Latin-1 bytes stand for themselves, the other 68
// (controls, space, 0x7f-0xa0, 0xad) for U+0100.. in byte order, so that every byte is a visible
// character BPE can merge.
struct ByteUnicode {
  std::array<uint8_t, 256> order{};      // vocabulary order (ids 0..255) -> byte
  std::array<std::string, 256> symbol;   // byte -> its character, UTF-8
  std::array<int16_t, 0x144> byte_of{};  // character (< U+0144) -> byte, or -1
};

const ByteUnicode& byte_unicode() {
  static const ByteUnicode table = [] {
    ByteUnicode t;
    std::array<bool, 256> printable{};
    std::vector<std::pair<int, uint32_t>> pairs;  // (byte, character) in vocabulary order
    for (int b = 0; b < 256; ++b) {
      printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      if (printable[b]) pairs.emplace_back(b, b);
    }
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      if (!printable[b]) pairs.emplace_back(b, next++);
    }
    t.byte_of.fill(-1);
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto [b, c] = pairs[i];
      t.order[i] = static_cast<uint8_t>(b);
      append_utf8(t.symbol[b], c);
      t.byte_of[c] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return table;
}

// ---- html.unescape ----

struct Entity {
  const char* name;
  const char* value;  // UTF-8
  bool legacy;        // also recognised without the ';' (HTML5's legacy names)
};

// HTML5's Latin-1 ("legacy") entities and the common typographic and Greek ones; the other ~2000
// names are left as text.
constexpr Entity kEntities[] = {
    {"Aacute", "\xc3\x81", true},
    {"aacute", "\xc3\xa1", true},
    {"Acirc", "\xc3\x82", true},
    {"acirc", "\xc3\xa2", true},
    {"acute", "\xc2\xb4", true},
    {"AElig", "\xc3\x86", true},
    {"aelig", "\xc3\xa6", true},
    {"Agrave", "\xc3\x80", true},
    {"agrave", "\xc3\xa0", true},
    {"Alpha", "\xce\x91", false},
    {"alpha", "\xce\xb1", false},
    {"AMP", "&", true},
    {"amp", "&", true},
    {"apos", "'", false},
    {"Aring", "\xc3\x85", true},
    {"aring", "\xc3\xa5", true},
    {"asymp", "\xe2\x89\x88", false},
    {"Atilde", "\xc3\x83", true},
    {"atilde", "\xc3\xa3", true},
    {"Auml", "\xc3\x84", true},
    {"auml", "\xc3\xa4", true},
    {"bdquo", "\xe2\x80\x9e", false},
    {"Beta", "\xce\x92", false},
    {"beta", "\xce\xb2", false},
    {"brvbar", "\xc2\xa6", true},
    {"bull", "\xe2\x80\xa2", false},
    {"Ccedil", "\xc3\x87", true},
    {"ccedil", "\xc3\xa7", true},
    {"cedil", "\xc2\xb8", true},
    {"cent", "\xc2\xa2", true},
    {"check", "\xe2\x9c\x93", false},
    {"Chi", "\xce\xa7", false},
    {"chi", "\xcf\x87", false},
    {"circ", "\xcb\x86", false},
    {"clubs", "\xe2\x99\xa3", false},
    {"COPY", "\xc2\xa9", true},
    {"copy", "\xc2\xa9", true},
    {"curren", "\xc2\xa4", true},
    {"Dagger", "\xe2\x80\xa1", false},
    {"dagger", "\xe2\x80\xa0", false},
    {"darr", "\xe2\x86\x93", false},
    {"deg", "\xc2\xb0", true},
    {"Delta", "\xce\x94", false},
    {"delta", "\xce\xb4", false},
    {"diams", "\xe2\x99\xa6", false},
    {"divide", "\xc3\xb7", true},
    {"Eacute", "\xc3\x89", true},
    {"eacute", "\xc3\xa9", true},
    {"Ecirc", "\xc3\x8a", true},
    {"ecirc", "\xc3\xaa", true},
    {"Egrave", "\xc3\x88", true},
    {"egrave", "\xc3\xa8", true},
    {"emsp", "\xe2\x80\x83", false},
    {"ensp", "\xe2\x80\x82", false},
    {"Epsilon", "\xce\x95", false},
    {"epsilon", "\xce\xb5", false},
    {"Eta", "\xce\x97", false},
    {"eta", "\xce\xb7", false},
    {"ETH", "\xc3\x90", true},
    {"eth", "\xc3\xb0", true},
    {"Euml", "\xc3\x8b", true},
    {"euml", "\xc3\xab", true},
    {"euro", "\xe2\x82\xac", false},
    {"fnof", "\xc6\x92", false},
    {"frac12", "\xc2\xbd", true},
    {"frac14", "\xc2\xbc", true},
    {"frac34", "\xc2\xbe", true},
    {"Gamma", "\xce\x93", false},
    {"gamma", "\xce\xb3", false},
    {"ge", "\xe2\x89\xa5", false},
    {"GT", ">", true},
    {"gt", ">", true},
    {"harr", "\xe2\x86\x94", false},
    {"hearts", "\xe2\x99\xa5", false},
    {"hellip", "\xe2\x80\xa6", false},
    {"Iacute", "\xc3\x8d", true},
    {"iacute", "\xc3\xad", true},
    {"Icirc", "\xc3\x8e", true},
    {"icirc", "\xc3\xae", true},
    {"iexcl", "\xc2\xa1", true},
    {"Igrave", "\xc3\x8c", true},
    {"igrave", "\xc3\xac", true},
    {"infin", "\xe2\x88\x9e", false},
    {"Iota", "\xce\x99", false},
    {"iota", "\xce\xb9", false},
    {"iquest", "\xc2\xbf", true},
    {"Iuml", "\xc3\x8f", true},
    {"iuml", "\xc3\xaf", true},
    {"Kappa", "\xce\x9a", false},
    {"kappa", "\xce\xba", false},
    {"Lambda", "\xce\x9b", false},
    {"lambda", "\xce\xbb", false},
    {"laquo", "\xc2\xab", true},
    {"larr", "\xe2\x86\x90", false},
    {"ldquo", "\xe2\x80\x9c", false},
    {"le", "\xe2\x89\xa4", false},
    {"lrm", "\xe2\x80\x8e", false},
    {"lsaquo", "\xe2\x80\xb9", false},
    {"lsquo", "\xe2\x80\x98", false},
    {"LT", "<", true},
    {"lt", "<", true},
    {"macr", "\xc2\xaf", true},
    {"mdash", "\xe2\x80\x94", false},
    {"micro", "\xc2\xb5", true},
    {"middot", "\xc2\xb7", true},
    {"minus", "\xe2\x88\x92", false},
    {"Mu", "\xce\x9c", false},
    {"mu", "\xce\xbc", false},
    {"nbsp", "\xc2\xa0", true},
    {"ndash", "\xe2\x80\x93", false},
    {"ne", "\xe2\x89\xa0", false},
    {"not", "\xc2\xac", true},
    {"Ntilde", "\xc3\x91", true},
    {"ntilde", "\xc3\xb1", true},
    {"Nu", "\xce\x9d", false},
    {"nu", "\xce\xbd", false},
    {"Oacute", "\xc3\x93", true},
    {"oacute", "\xc3\xb3", true},
    {"Ocirc", "\xc3\x94", true},
    {"ocirc", "\xc3\xb4", true},
    {"OElig", "\xc5\x92", false},
    {"oelig", "\xc5\x93", false},
    {"Ograve", "\xc3\x92", true},
    {"ograve", "\xc3\xb2", true},
    {"Omega", "\xce\xa9", false},
    {"omega", "\xcf\x89", false},
    {"Omicron", "\xce\x9f", false},
    {"omicron", "\xce\xbf", false},
    {"ordf", "\xc2\xaa", true},
    {"ordm", "\xc2\xba", true},
    {"Oslash", "\xc3\x98", true},
    {"oslash", "\xc3\xb8", true},
    {"Otilde", "\xc3\x95", true},
    {"otilde", "\xc3\xb5", true},
    {"Ouml", "\xc3\x96", true},
    {"ouml", "\xc3\xb6", true},
    {"para", "\xc2\xb6", true},
    {"permil", "\xe2\x80\xb0", false},
    {"Phi", "\xce\xa6", false},
    {"phi", "\xcf\x86", false},
    {"Pi", "\xce\xa0", false},
    {"pi", "\xcf\x80", false},
    {"plusmn", "\xc2\xb1", true},
    {"pound", "\xc2\xa3", true},
    {"Prime", "\xe2\x80\xb3", false},
    {"prime", "\xe2\x80\xb2", false},
    {"prod", "\xe2\x88\x8f", false},
    {"Psi", "\xce\xa8", false},
    {"psi", "\xcf\x88", false},
    {"QUOT", "\x22", true},
    {"quot", "\x22", true},
    {"radic", "\xe2\x88\x9a", false},
    {"raquo", "\xc2\xbb", true},
    {"rarr", "\xe2\x86\x92", false},
    {"rdquo", "\xe2\x80\x9d", false},
    {"REG", "\xc2\xae", true},
    {"reg", "\xc2\xae", true},
    {"Rho", "\xce\xa1", false},
    {"rho", "\xcf\x81", false},
    {"rlm", "\xe2\x80\x8f", false},
    {"rsaquo", "\xe2\x80\xba", false},
    {"rsquo", "\xe2\x80\x99", false},
    {"sbquo", "\xe2\x80\x9a", false},
    {"Scaron", "\xc5\xa0", false},
    {"scaron", "\xc5\xa1", false},
    {"sect", "\xc2\xa7", true},
    {"shy", "\xc2\xad", true},
    {"Sigma", "\xce\xa3", false},
    {"sigma", "\xcf\x83", false},
    {"sigmaf", "\xcf\x82", false},
    {"spades", "\xe2\x99\xa0", false},
    {"sum", "\xe2\x88\x91", false},
    {"sup1", "\xc2\xb9", true},
    {"sup2", "\xc2\xb2", true},
    {"sup3", "\xc2\xb3", true},
    {"szlig", "\xc3\x9f", true},
    {"Tau", "\xce\xa4", false},
    {"tau", "\xcf\x84", false},
    {"Theta", "\xce\x98", false},
    {"theta", "\xce\xb8", false},
    {"thinsp", "\xe2\x80\x89", false},
    {"THORN", "\xc3\x9e", true},
    {"thorn", "\xc3\xbe", true},
    {"tilde", "\xcb\x9c", false},
    {"times", "\xc3\x97", true},
    {"trade", "\xe2\x84\xa2", false},
    {"Uacute", "\xc3\x9a", true},
    {"uacute", "\xc3\xba", true},
    {"uarr", "\xe2\x86\x91", false},
    {"Ucirc", "\xc3\x9b", true},
    {"ucirc", "\xc3\xbb", true},
    {"Ugrave", "\xc3\x99", true},
    {"ugrave", "\xc3\xb9", true},
    {"uml", "\xc2\xa8", true},
    {"Upsilon", "\xce\xa5", false},
    {"upsilon", "\xcf\x85", false},
    {"Uuml", "\xc3\x9c", true},
    {"uuml", "\xc3\xbc", true},
    {"Xi", "\xce\x9e", false},
    {"xi", "\xce\xbe", false},
    {"Yacute", "\xc3\x9d", true},
    {"yacute", "\xc3\xbd", true},
    {"yen", "\xc2\xa5", true},
    {"Yuml", "\xc5\xb8", false},
    {"yuml", "\xc3\xbf", true},
    {"Zeta", "\xce\x96", false},
    {"zeta", "\xce\xb6", false},
    {"zwj", "\xe2\x80\x8d", false},
    {"zwnj", "\xe2\x80\x8c", false},
};

const Entity* find_entity(std::string_view name) {
  static const std::unordered_map<std::string_view, const Entity*> kByName = [] {
    std::unordered_map<std::string_view, const Entity*> m;
    for (const Entity& e : kEntities) m[e.name] = &e;
    return m;
  }();
  const auto it = kByName.find(name);
  return it == kByName.end() ? nullptr : it->second;
}

// Python's html.unescape for the number of a numeric character reference.
void append_charref(std::string& out, uint64_t n) {
  // Windows-1252 for 0x80-0x9f, as HTML5 reads such references.
  static constexpr uint16_t kCp1252[32] = {
      0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (n == 0) return append_utf8(out, 0xFFFD);
  if (n == 0x0D) return append_utf8(out, 0x0D);
  if (n >= 0x80 && n <= 0x9F) return append_utf8(out, kCp1252[n - 0x80]);
  if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) return append_utf8(out, 0xFFFD);
  const bool invalid = (n >= 0x01 && n <= 0x08) || n == 0x0B || (n >= 0x0E && n <= 0x1F) ||
                       (n >= 0x7F && n <= 0x9F) || (n >= 0xFDD0 && n <= 0xFDEF) ||
                       (n & 0xFFFE) == 0xFFFE;
  if (!invalid) append_utf8(out, static_cast<uint32_t>(n));
}

bool is_digit(char c, bool hex) {
  return (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
}

// Appends what the character reference after the '&' at s[at - 1] stands for, as Python's
// html.unescape reads it; returns how many bytes after the '&' it used, or 0 (the '&' is text).
size_t unescape_reference(std::string_view s, size_t at, std::string& out) {
  if (at < s.size() && s[at] == '#') {
    const bool hex =
        at + 2 < s.size() && (s[at + 1] == 'x' || s[at + 1] == 'X') && is_digit(s[at + 2], true);
    size_t i = at + (hex ? 2 : 1);
    if (i >= s.size() || !is_digit(s[i], hex)) return 0;
    uint64_t n = 0;
    for (; i < s.size() && is_digit(s[i], hex); ++i) {
      const char c = s[i];
      const int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      n = std::min<uint64_t>(n * (hex ? 16 : 10) + digit, 0x110000);  // past U+10FFFF: U+FFFD
    }
    if (i < s.size() && s[i] == ';') ++i;
    append_charref(out, n);
    return i - at;
  }
  // A name: up to 32 characters other than tab, newline, form feed, space, <, &, # and ;.
  size_t end = at;
  for (int count = 0; end < s.size() && count < 32; ++count) {
    const char c = s[end];
    if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
        c == ';') {
      break;
    }
    ++end;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
  }
  if (end == at) return 0;
  const std::string_view name = s.substr(at, end - at);
  const bool semicolon = end < s.size() && s[end] == ';';
  if (const Entity* e = find_entity(name); e != nullptr && (semicolon || e->legacy)) {
    out += e->value;
    return name.size() + (semicolon ? 1 : 0);
  }
  // The longest legacy name the text starts with ("&notit;" -> "¬it;").
  for (size_t len = semicolon ? name.size() : name.size() - 1; len >= 2; --len) {
    const Entity* e = find_entity(name.substr(0, len));
    if (e != nullptr && e->legacy) {
      out += e->value;
      return len;
    }
  }
  return 0;
}

std::string html_unescape(std::string_view s) {
  if (s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t amp = s.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(s.substr(i));
      break;
    }
    out.append(s.substr(i, amp - i));
    const size_t used = unescape_reference(s, amp + 1, out);
    if (used == 0) out += '&';
    i = amp + 1 + used;
  }
  return out;
}

// Python's str.lower() where it goes beyond the simple case mapping of letters (which PCRE2's \L
// does): U+0130 "İ" -> "i̇" (two characters), and the non-letters with a lower case, Roman numerals
// (Ⅻ -> ⅻ) and circled letters (Ⓐ -> ⓐ). `s` is valid UTF-8.
std::string lower_non_letters(const std::string& s) {
  if (s.find("\xC4\xB0") == std::string::npos && s.find("\xE2\x85") == std::string::npos &&
      s.find("\xE2\x92") == std::string::npos && s.find("\xE2\x93") == std::string::npos) {
    return s;
  }
  std::string out;
  out.reserve(s.size() + 8);
  uint32_t cp = 0;
  size_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_next(s, i, cp, bad);
    if (len == 0) {  // not after clean()'s check
      out += s[i++];
    } else if (cp == 0x130) {
      out += "i\xCC\x87";
    } else if (cp >= 0x2160 && cp <= 0x216F) {
      append_utf8(out, cp + 0x10);
    } else if (cp >= 0x24B6 && cp <= 0x24CF) {
      append_utf8(out, cp + 0x1A);
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  return out;
}

// ---- PCRE2 ----

std::string pcre2_message(int code) {
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(code, message, sizeof(message));
  return reinterpret_cast<const char*>(message);
}

Regex compile(const char* pattern, uint32_t options) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                 options | PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
  NUMERAL_CHECK(re != nullptr,
                "CLIP tokenizer: cannot compile the regex '{}' (PCRE2: {} at offset {})", pattern,
                pcre2_message(code), offset);
  return Regex(re, pcre2_code_free);
}

// Every match of `re` in `s` (valid UTF-8) replaced by `replacement` (PCRE2's substitution syntax,
// extended: \L$0 lower-cases the match).
std::string substitute(const Regex& re, const std::string& s, const char* replacement) {
  const uint32_t options = PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_EXTENDED |
                           PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK;
  std::string out(s.size() + s.size() / 2 + 16, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    PCRE2_SIZE length = out.size();
    const int rc = pcre2_substitute(
        re.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, options, nullptr, nullptr,
        reinterpret_cast<PCRE2_SPTR>(replacement), PCRE2_ZERO_TERMINATED,
        reinterpret_cast<PCRE2_UCHAR*>(out.data()), &length);
    if (rc >= 0) {
      out.resize(length);
      return out;
    }
    NUMERAL_CHECK(rc == PCRE2_ERROR_NOMEMORY, "CLIP tokenizer: regex substitution failed ({})",
                  pcre2_message(rc));
    out.assign(length, '\0');  // the length needed, with the terminating zero
  }
  fail("CLIP tokenizer: regex substitution failed (output buffer)");
}

// ---- files ----

// A gzip file's decompressed content; one-line errors naming the file.
std::string read_gzip(const fs::path& path) {
  NUMERAL_CHECK(fs::exists(path), "{}: no such file ({})", path.string(), kWhereFrom);
  NUMERAL_CHECK(fs::is_regular_file(path), "{}: not a regular file", path.string());
  {
    unsigned char magic[2] = {0, 0};
    FILE* file = std::fopen(path.c_str(), "rb");
    NUMERAL_CHECK(file != nullptr, "{}: cannot open: {}", path.string(), std::strerror(errno));
    const size_t got = std::fread(magic, 1, 2, file);
    std::fclose(file);
    NUMERAL_CHECK(got == 2 && magic[0] == 0x1f && magic[1] == 0x8b,
                  "{}: not a gzip file (expected OpenAI's bpe_simple_vocab_16e6.txt.gz)",
                  path.string());
  }
  gzFile file = gzopen(path.c_str(), "rb");
  NUMERAL_CHECK(file != nullptr, "{}: cannot open: {}", path.string(), std::strerror(errno));
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  const auto zlib_error = [&] {
    int code = Z_OK;
    std::string message = gzerror(file, &code);
    if (code == Z_ERRNO) message = std::strerror(errno);
    const std::string prefix = path.string() + ": ";  // zlib starts its messages with the path
    if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
    return std::make_pair(code, message);
  };
  std::string out;
  std::vector<char> buffer(1 << 16);
  while (true) {
    const int got = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()));
    if (got < 0) fail("{}: corrupt gzip data: {}", path.string(), zlib_error().second);
    if (got == 0) break;
    out.append(buffer.data(), got);
    NUMERAL_CHECK(out.size() <= kMaxBpeBytes,
                  "{}: decompresses to more than {} MiB, far more than a CLIP merges file",
                  path.string(), kMaxBpeBytes >> 20);
  }
  const auto [code, message] = zlib_error();
  NUMERAL_CHECK(code != Z_BUF_ERROR, "{}: truncated gzip file (the stream ends early)",
                path.string());
  NUMERAL_CHECK(code == Z_OK, "{}: corrupt gzip data: {}", path.string(), message);
  return out;
}

// The line (1-based) that byte `offset` of `text` is on.
int64_t line_of(std::string_view text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + std::min(offset, text.size()), '\n');
}

// The merges of a merges.txt or bpe_simple_vocab_16e6.txt: a "#version" header line, then up to
// kMaxMerges lines of two symbols, as both references read them (later lines are ignored).
std::vector<std::pair<std::string, std::string>> parse_merges(std::string_view text,
                                                              const fs::path& path) {
  if (const size_t bad = invalid_utf8_at(text); bad != std::string_view::npos) {
    fail("{}: line {} is not valid UTF-8 (byte 0x{:02x})", path.string(), line_of(text, bad),
         static_cast<unsigned char>(text[bad]));
  }
  // Blank lines at the end are not merges (HF strips the text first).
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  NUMERAL_CHECK(!text.empty(), "{}: empty merges file ({})", path.string(), kWhereFrom);
  const auto next_line = [&](size_t& at) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    at = end + 1;
    return line;
  };
  size_t at = 0;
  const std::string_view header = next_line(at);
  NUMERAL_CHECK(header.find("#version") != std::string_view::npos,
                "{}: line 1 '{}' is not a '#version: 0.2' header line (a CLIP merges file starts "
                "with one, and its first line is skipped)",
                path.string(), printable(header));
  std::vector<std::pair<std::string, std::string>> merges;
  for (int64_t line_no = 2; at <= text.size() && line_no <= kMaxMerges + 1; ++line_no) {
    const std::string_view line = next_line(at);
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < line.size();) {
      if (line[i] == ' ' || line[i] == '\t') {
        ++i;
        continue;
      }
      const size_t end = std::min(line.find_first_of(" \t", i), line.size());
      fields.push_back(line.substr(i, end - i));
      i = end;
    }
    NUMERAL_CHECK(fields.size() == 2,
                  "{}: line {}: expected a merge, two symbols separated by a space, found '{}'",
                  path.string(), line_no, printable(line));
    merges.emplace_back(fields[0], fields[1]);
  }
  return merges;
}

std::shared_ptr<TokenizerData> new_data() {
  auto d = std::make_shared<TokenizerData>();
  d->whitespace = compile(kWhitespacePattern, 0);
  // $1 is the cased character before the sigma, with the case-ignorable ones after it.
  const std::string final_sigma =
      fmt::format(R"(({0}{1}*)\x{{3A3}}(?!{1}*{0}))", kCased, kCaseIgnorable);
  d->final_sigma = compile(final_sigma.c_str(), 0);
  d->upper = compile(R"([\p{Lu}\p{Lt}]+)", 0);
  d->split = compile(kSplitPattern, PCRE2_CASELESS);
  return d;
}

// Fills the decoder and ranks and checks what encode() relies on: the byte symbols, the special
// tokens and each merge's result are in the vocabulary.
void finish(TokenizerData& d, const std::vector<std::pair<std::string, std::string>>& merges,
            const fs::path& vocab_path, const fs::path& merges_path) {
  int64_t size = 0;
  for (const auto& [token, id] : d.encoder) size = std::max(size, id + 1);
  d.decoder.assign(size, "");
  d.known.assign(size, 0);
  for (const auto& [token, id] : d.encoder) {
    NUMERAL_CHECK(!d.known[id], "{}: id {} is given to both '{}' and '{}'", vocab_path.string(), id,
                  printable(d.decoder[id]), printable(token));
    d.decoder[id] = token;
    d.known[id] = 1;
  }
  const ByteUnicode& bu = byte_unicode();
  for (int b = 0; b < 256; ++b) {
    for (const std::string& symbol : {bu.symbol[b], bu.symbol[b] + kEndOfWord}) {
      NUMERAL_CHECK(d.encoder.count(symbol) != 0,
                    "{}: lacks the byte symbol '{}' (for byte 0x{:02x}; a CLIP vocabulary holds "
                    "all 256 byte symbols, with and without </w>)",
                    vocab_path.string(), symbol, b);
    }
  }
  for (const char* token : {kStartToken, kEndToken}) {
    NUMERAL_CHECK(d.encoder.count(token) != 0, "{}: lacks the special token {}",
                  vocab_path.string(), token);
  }
  d.start_id = d.encoder.at(kStartToken);
  d.end_id = d.encoder.at(kEndToken);
  d.ranks.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [first, second] = merges[i];
    NUMERAL_CHECK(d.encoder.count(first + second) != 0,
                  "{}: line {}: the merge '{} {}' makes '{}', which is not in {}",
                  merges_path.string(), i + 2, printable(first), printable(second),
                  printable(first + second), vocab_path.string());
    d.ranks[first + ' ' + second] = static_cast<int32_t>(i);  // a repeated merge: the later rank
  }
}

// The BPE of one pre-split piece (simple_tokenizer.py's bpe()): its bytes as byte symbols, "</w>"
// on the last, then the adjacent pair with the lowest merge rank merged everywhere, left to
// right, until no pair has a rank.
std::vector<int64_t> bpe(const TokenizerData& d, const std::string& piece) {
  if (piece == kStartToken) return {d.start_id};
  if (piece == kEndToken) return {d.end_id};
  {
    const std::lock_guard<std::mutex> lock(d.cache_mutex);
    const auto it = d.cache.find(piece);
    if (it != d.cache.end()) return it->second;
  }
  const ByteUnicode& bu = byte_unicode();
  std::vector<std::string> word;
  word.reserve(piece.size());
  for (const char c : piece) word.push_back(bu.symbol[static_cast<unsigned char>(c)]);
  word.back() += kEndOfWord;
  std::vector<std::string> merged;
  while (word.size() > 1) {
    int32_t best = INT32_MAX;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = d.ranks.find(word[i] + ' ' + word[i + 1]);
      if (it != d.ranks.end() && it->second < best) {
        best = it->second;
        best_at = i;
      }
    }
    if (best == INT32_MAX) break;
    const std::string first = word[best_at], second = word[best_at + 1];
    merged.clear();
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(word[i]));
        i += 1;
      }
    }
    word.swap(merged);
  }
  std::vector<int64_t> ids;
  ids.reserve(word.size());
  for (const std::string& symbol : word) {
    const auto it = d.encoder.find(symbol);
    // finish() checked that every byte symbol and merge result has an id.
    NUMERAL_CHECK(it != d.encoder.end(), "CLIP tokenizer: BPE made '{}', which has no id",
                  printable(symbol));
    ids.push_back(it->second);
  }
  const std::lock_guard<std::mutex> lock(d.cache_mutex);
  if (d.cache.size() >= kMaxCacheEntries) d.cache.clear();
  d.cache.emplace(piece, ids);
  return ids;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const detail::TokenizerData> data) : data_(std::move(data)) {}

Tokenizer Tokenizer::from_hf_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  auto d = new_data();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", vocab_json.string(), e.what());
  }
  NUMERAL_CHECK(j.is_object(), "{}: expected a JSON object of token -> id, found {}",
                vocab_json.string(), j.type_name());
  d->encoder.reserve(j.size());
  for (const auto& item : j.items()) {
    const std::string& token = item.key();
    const nlohmann::json& id = item.value();
    NUMERAL_CHECK(id.is_number_integer(), "{}: the id of '{}' is {}, expected an integer",
                  vocab_json.string(), printable(token), id.type_name());
    NUMERAL_CHECK(id.is_number_unsigned() && id.get<uint64_t>() < static_cast<uint64_t>(kMaxId),
                  "{}: the id of '{}' is {}, expected 0 to {}", vocab_json.string(),
                  printable(token), id.dump(), kMaxId - 1);
    d->encoder[token] = id.get<int64_t>();
  }
  const auto merges = parse_merges(read_file(merges_txt), merges_txt);
  finish(*d, merges, vocab_json, merges_txt);
  return Tokenizer(std::move(d));
}

Tokenizer Tokenizer::from_openai_bpe(const fs::path& bpe_gz) {
  auto d = new_data();
  const auto merges = parse_merges(read_gzip(bpe_gz), bpe_gz);
  // simple_tokenizer.py's vocabulary: byte symbols, the same with </w>, merges, special tokens (a
  // repeated string keeps its later id, as Python's dict does).
  const ByteUnicode& bu = byte_unicode();
  int64_t id = 0;
  for (const uint8_t b : bu.order) d->encoder[bu.symbol[b]] = id++;
  for (const uint8_t b : bu.order) d->encoder[bu.symbol[b] + kEndOfWord] = id++;
  for (const auto& [first, second] : merges) d->encoder[first + second] = id++;
  d->encoder[kStartToken] = id++;
  d->encoder[kEndToken] = id++;
  finish(*d, merges, bpe_gz, bpe_gz);
  return Tokenizer(std::move(d));
}

Tokenizer Tokenizer::load(const fs::path& dir) {
  const std::string gz_name = "bpe_simple_vocab_16e6.txt.gz";
  if (fs::is_regular_file(dir)) {
    const std::string name = dir.filename().string();
    NUMERAL_CHECK(name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0,
                  "{}: expected a CLIP model directory or {} ({})", dir.string(), gz_name,
                  kWhereFrom);
    return from_openai_bpe(dir);
  }
  NUMERAL_CHECK(fs::is_directory(dir),
                "{}: no such directory (expected a CLIP model directory: {})", dir.string(),
                kWhereFrom);
  for (const fs::path& folder : {dir, dir / "tokenizer"}) {
    const fs::path vocab = folder / "vocab.json", merges = folder / "merges.txt";
    const bool has_vocab = fs::exists(vocab), has_merges = fs::exists(merges);
    if (has_vocab && has_merges) return from_hf_files(vocab, merges);
    NUMERAL_CHECK(!has_vocab && !has_merges,
                  "{}: has {} but not {} (both come with a Hugging Face "
                  "CLIP model such as openai/clip-vit-base-patch32)",
                  folder.string(), has_vocab ? "vocab.json" : "merges.txt",
                  has_vocab ? "merges.txt" : "vocab.json");
    if (folder == dir && fs::exists(dir / gz_name)) return from_openai_bpe(dir / gz_name);
  }
  fail("{}: no CLIP tokenizer files: expected vocab.json + merges.txt or {} ({})", dir.string(),
       gz_name, kWhereFrom);
}

std::string Tokenizer::clean(const std::string& text) const {
  if (const size_t bad = invalid_utf8_at(text); bad != std::string::npos) {
    fail("CLIP tokenizer: the text is not valid UTF-8 (byte 0x{:02x} at offset {})",
         static_cast<unsigned char>(text[bad]), bad);
  }
  const TokenizerData& d = *data_;
  // simple_tokenizer.py: html.unescape twice, whitespace runs to one space, strip, lower().
  std::string s = html_unescape(html_unescape(text));
  s = substitute(d.whitespace, s, " ");
  const size_t begin = s.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  s = s.substr(begin, s.find_last_not_of(' ') + 1 - begin);
  if (s.find("\xCE\xA3") != std::string::npos) s = substitute(d.final_sigma, s, "$1\xCF\x82");
  return substitute(d.upper, lower_non_letters(s), R"(\L$0)");
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  const TokenizerData& d = *data_;
  const std::string s = clean(text);
  const std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create_from_pattern(d.split.get(), nullptr), pcre2_match_data_free);
  NUMERAL_CHECK(match != nullptr, "CLIP tokenizer: out of memory for regex match data");
  std::vector<int64_t> ids;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  for (PCRE2_SIZE at = 0; at < s.size();) {
    const int rc =
        pcre2_match(d.split.get(), subject, s.size(), at, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    NUMERAL_CHECK(rc > 0, "CLIP tokenizer: regex match failed ({})", pcre2_message(rc));
    const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match.get());
    if (span[1] == span[0]) {  // no alternative matches empty text; step on all the same
      at = span[1] + 1;
      while (at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) ++at;
      continue;
    }
    const auto piece_ids = bpe(d, s.substr(span[0], span[1] - span[0]));
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    at = span[1];
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const TokenizerData& d = *data_;
  const ByteUnicode& bu = byte_unicode();
  std::string bytes;
  for (const int64_t id : ids) {
    NUMERAL_CHECK(id >= 0 && id < static_cast<int64_t>(d.known.size()) && d.known[id],
                  "CLIP decode: id {} is not in the vocabulary (ids 0 to {})", id,
                  static_cast<int64_t>(d.known.size()) - 1);
    // Each character of the token back to its byte (a character outside the byte alphabet, as in
    // an added token, stands for itself).
    const std::string& token = d.decoder[id];
    uint32_t cp = 0;
    size_t bad = 0;
    for (size_t i = 0; i < token.size();) {
      const size_t len = utf8_next(token, i, cp, bad);
      if (len == 0) {  // not from a loader: tokens are valid UTF-8
        bytes.append(token, i, bad);
        i += bad;
        continue;
      }
      if (cp < bu.byte_of.size() && bu.byte_of[cp] >= 0) {
        bytes += static_cast<char>(bu.byte_of[cp]);
      } else {
        bytes.append(token, i, len);
      }
      i += len;
    }
  }
  std::string text = replace_invalid_utf8(bytes);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, kEndOfWord) == 0) {
      out += ' ';
      i += 4;
    } else {
      out += text[i++];
    }
  }
  const size_t begin = out.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  return out.substr(begin, out.find_last_not_of(" \t\n\r\f\v") + 1 - begin);
}

torch::Tensor Tokenizer::tokenize(const std::vector<std::string>& texts, int64_t context_length,
                                  bool truncate) const {
  NUMERAL_CHECK(context_length >= 2,
                "CLIP tokenize: context_length {} must be at least 2 (the start and end tokens)",
                context_length);
  const auto n = static_cast<int64_t>(texts.size());
  torch::Tensor result = torch::full({n, context_length}, pad_id(), torch::kLong);
  auto rows = result.accessor<int64_t, 2>();
  const int64_t room = context_length - 2;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> ids = encode(texts[i]);
    if (static_cast<int64_t>(ids.size()) > room) {
      NUMERAL_CHECK(truncate,
                    "CLIP tokenize: text '{}' has {} tokens, more than the {} that fit in "
                    "context_length {} (shorten it or tokenize with truncation)",
                    printable(texts[i]), ids.size(), room, context_length);
      ids.resize(room);
    }
    rows[i][0] = start_id();
    for (size_t k = 0; k < ids.size(); ++k) rows[i][1 + k] = ids[k];
    rows[i][1 + ids.size()] = end_id();
  }
  return result;
}

int64_t Tokenizer::start_id() const {
  return data_->start_id;
}
int64_t Tokenizer::end_id() const {
  return data_->end_id;
}
int64_t Tokenizer::pad_id() const {
  return data_->end_id;
}
int64_t Tokenizer::vocab_size() const {
  return static_cast<int64_t>(data_->decoder.size());
}

}  // namespace numeral::clip
