#pragma once
// What the generation commands check before spending minutes on sampling: the classes asked for
// and that every output can be written.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace numeral {

// The classes to generate: `requested` (a --digit list) checked against a model of num_classes,
// or all classes 0..num_classes-1 when it is empty. Throws numeral::Error naming the first value
// out of range.
std::vector<int64_t> resolve_classes(const std::vector<int64_t>& requested, int64_t num_classes);

// Throws numeral::Error (naming `flag` and the path) unless a file can be written at `path`: absent
// or a regular file (check_output_target), its parent directory exists or can be created, and is
// writable.
void check_output_path(const std::filesystem::path& path, const std::string& flag);

// The most images one request may ask for: IDX files count their items in 32 bits.
constexpr int64_t kMaxRequestImages = 2147483647;

// per_class x rows, the size of a request, checked against kMaxRequestImages before anything is
// allocated; throws numeral::Error naming `flag` and the largest value allowed.
int64_t request_size(int64_t per_class, int64_t rows, const std::string& flag);

// A guidance weight for labels and messages: "0", "0.5", "2".
std::string format_weight(double w);

}  // namespace numeral
