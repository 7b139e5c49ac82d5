#include "numeral/io/safetensors.h"

#include <torch/torch.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"

namespace numeral {
namespace {

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {torch::kFloat, "F32"}, {torch::kDouble, "F64"}, {torch::kBFloat16, "BF16"},
    {torch::kHalf, "F16"},  {torch::kLong, "I64"},   {torch::kInt, "I32"},
    {torch::kShort, "I16"}, {torch::kChar, "I8"},    {torch::kByte, "U8"},
    {torch::kBool, "BOOL"},
};

const char* dtype_name(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  fail("safetensors: unsupported dtype {}", c10::toString(type));
}

torch::ScalarType dtype_from_name(const std::string& name, const std::string& origin) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  fail("{}: unsupported safetensors dtype '{}'", origin, name);
}

}  // namespace

std::string to_safetensors(const TensorFile& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::vector<torch::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    NUMERAL_CHECK(name != "__metadata__", "safetensors: '__metadata__' is a reserved name");
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(t);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& t : cpu) {
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  return out;
}

TensorFile from_safetensors(const std::string& bytes, const std::string& origin) {
  NUMERAL_CHECK(bytes.size() >= 8, "{}: not a safetensors file (only {} bytes)", origin,
                bytes.size());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  NUMERAL_CHECK(n >= 2 && n <= bytes.size() - 8,
                "{}: not a safetensors file or truncated (header length {} for a {}-byte file)",
                origin, n, bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt safetensors header: {}", origin, e.what());
  }
  NUMERAL_CHECK(header.is_object(), "{}: corrupt safetensors header: not a JSON object", origin);
  const uint64_t data_start = 8 + n, data_size = bytes.size() - data_start;
  TensorFile file;
  uint64_t covered = 0;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, value] : entry.items()) {
        NUMERAL_CHECK(value.is_string(), "{}: metadata '{}' is not a string", origin, key);
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    try {
      const auto type = dtype_from_name(entry.at("dtype").get<std::string>(), origin);
      const auto shape = entry.at("shape").get<std::vector<int64_t>>();
      const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
      NUMERAL_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size,
                    "{}: tensor '{}' lies outside the file (truncated?)", origin, name);
      int64_t numel = 1;
      for (auto d : shape) {
        NUMERAL_CHECK(d >= 0, "{}: tensor '{}' has a negative dimension", origin, name);
        numel *= d;
      }
      const uint64_t expected = numel * c10::elementSize(type);
      NUMERAL_CHECK(offsets[1] - offsets[0] == expected,
                    "{}: tensor '{}' has {} bytes for shape of {} bytes", origin, name,
                    offsets[1] - offsets[0], expected);
      auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
      if (expected > 0) std::memcpy(t.data_ptr(), bytes.data() + data_start + offsets[0], expected);
      covered += expected;
      file.tensors.emplace(name, t);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: corrupt entry for tensor '{}': {}", origin, name, e.what());
    }
  }
  NUMERAL_CHECK(covered == data_size, "{}: {} data bytes but the tensors account for {}", origin,
                data_size, covered);
  return file;
}

void save_safetensors(const std::filesystem::path& path, const TensorFile& file) {
  write_file_atomic(path, to_safetensors(file));
}

TensorFile load_safetensors(const std::filesystem::path& path) {
  return from_safetensors(read_file(path), path.string());
}

}  // namespace numeral
