#pragma once
// IDX files, MNIST's own format (http://yann.lecun.com/exdb/mnist/): raw or gzip-compressed.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace numeral {

// Reads an unsigned-byte IDX file (type 0x08, 1 to 4 dimensions), gzip or raw (detected from the
// content, not the name). Checks the magic number, the dimensions and that the payload length is
// exactly their product; throws numeral::Error naming the file and the problem otherwise.
torch::Tensor read_idx(const std::filesystem::path& path);  // uint8, shape = the file's dims

// Reads only the header of an IDX file (cheap even for .gz) and returns its dimensions; checks
// the header as read_idx does but not the payload.
std::vector<int64_t> read_idx_shape(const std::filesystem::path& path);

// Writes a uint8 tensor (1 to 4 dimensions) as an IDX file, gzip-compressed when the name ends in
// ".gz"; atomic (temporary file, then rename).
void write_idx(const std::filesystem::path& path, const torch::Tensor& data);

}  // namespace numeral
