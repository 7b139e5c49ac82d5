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

// Throws numeral::Error (naming `flag` and the path) unless a file can be written at `path`: not a
// directory, its parent directory exists or can be created, and is writable.
void check_output_path(const std::filesystem::path& path, const std::string& flag);

// A guidance weight for labels and messages: "0", "0.5", "2".
std::string format_weight(double w);

}  // namespace numeral
