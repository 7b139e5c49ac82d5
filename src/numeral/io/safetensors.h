#pragma once
// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the raw little-endian data. Readable by Python's `safetensors` package as is.
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace numeral {

// Named tensors plus string metadata ("__metadata__" in the header).
struct TensorFile {
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Serialises to safetensors bytes. Supports float32/64, bfloat16, float16, int64/32/16/8, uint8
// and bool; tensors are copied to the CPU and made contiguous.
std::string to_safetensors(const TensorFile& file);

// Parses safetensors bytes; `origin` names the source in errors. Checks the header length, the
// JSON, every dtype, shape and byte range; throws numeral::Error on any inconsistency.
TensorFile from_safetensors(const std::string& bytes, const std::string& origin);

// Writes atomically (temporary file, then rename).
void save_safetensors(const std::filesystem::path& path, const TensorFile& file);

// Reads and parses a file; errors name the path.
TensorFile load_safetensors(const std::filesystem::path& path);

}  // namespace numeral
