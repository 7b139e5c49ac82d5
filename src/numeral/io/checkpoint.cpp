#include "numeral/io/checkpoint.h"

#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/io/safetensors.h"

namespace numeral {
namespace {

uint32_t tensors_crc32(const std::map<std::string, torch::Tensor>& tensors) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    crc = crc32(crc, reinterpret_cast<const Bytef*>(name.data()), static_cast<uInt>(name.size()));
    crc = crc32(crc, static_cast<const Bytef*>(t.data_ptr()),
                static_cast<uInt>(t.numel() * t.element_size()));
  }
  return static_cast<uint32_t>(crc);
}

// The metadata every checkpoint carries besides its CRCs, in the order the metadata CRC covers.
constexpr const char* kCoveredMetadata[] = {"format", "format_version", "kind", "config", "state"};

// CRC-32 of the covered metadata: each key and value, NUL-terminated so that no text can move
// between fields unnoticed.
uint32_t metadata_crc32(const std::map<std::string, std::string>& metadata) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const char* key : kCoveredMetadata) {
    const auto it = metadata.find(key);
    const std::string value = it == metadata.end() ? "" : it->second;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(key), static_cast<uInt>(std::strlen(key) + 1));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(value.c_str()),
                static_cast<uInt>(value.size() + 1));
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  TensorFile file;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    file.tensors.emplace(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  file.metadata = {{"format", kCheckpointMagic},
                   {"format_version", std::to_string(kCheckpointFormatVersion)},
                   {"kind", checkpoint.kind},
                   {"config", checkpoint.config.dump()},
                   {"state", checkpoint.state.dump()},
                   {"crc32", std::to_string(tensors_crc32(file.tensors))}};
  file.metadata["crc32_metadata"] = std::to_string(metadata_crc32(file.metadata));
  save_safetensors(path, file);
}

std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) return path / "checkpoint.safetensors";
  return path;
}

Checkpoint load_checkpoint(const std::filesystem::path& path_or_dir,
                           const std::string& expected_kind) {
  return load_checkpoint(path_or_dir, std::vector<std::string>{expected_kind});
}

Checkpoint load_checkpoint(const std::filesystem::path& path_or_dir,
                           const std::vector<std::string>& expected_kinds) {
  const auto path = resolve_checkpoint_path(path_or_dir);
  const std::string origin = path.string();
  NUMERAL_CHECK(std::filesystem::exists(path), "{}: no such checkpoint{}", origin,
                std::filesystem::is_directory(path_or_dir) ? " in the run directory" : "");
  TensorFile file = load_safetensors(path);
  auto meta = [&](const std::string& key) {
    auto it = file.metadata.find(key);
    NUMERAL_CHECK(it != file.metadata.end(), "{}: not a numeral checkpoint (no '{}' metadata)",
                  origin, key);
    return it->second;
  };
  NUMERAL_CHECK(meta("format") == kCheckpointMagic, "{}: not a numeral checkpoint (format '{}')",
                origin, meta("format"));
  int version = 0;
  try {
    version = std::stoi(meta("format_version"));
  } catch (const std::exception&) {
    fail("{}: corrupt checkpoint: format_version '{}'", origin, meta("format_version"));
  }
  NUMERAL_CHECK(version <= kCheckpointFormatVersion,
                "{}: checkpoint format version {} is newer than this numeral supports ({}); "
                "upgrade numeral",
                origin, version, kCheckpointFormatVersion);
  NUMERAL_CHECK(version >= 1, "{}: corrupt checkpoint: format_version {}", origin, version);
  // Version 1 files (before the metadata CRC) are read without that check.
  if (version >= 2) {
    NUMERAL_CHECK(meta("crc32_metadata") == std::to_string(metadata_crc32(file.metadata)),
                  "{}: corrupt checkpoint: CRC-32 of the metadata (format, kind, config, training "
                  "state) does not match",
                  origin);
  }
  const std::string kind = meta("kind");
  NUMERAL_CHECK(
      std::find(expected_kinds.begin(), expected_kinds.end(), kind) != expected_kinds.end(),
      "{}: is a {} checkpoint, expected a {} checkpoint", origin, kind,
      fmt::format("{}", fmt::join(expected_kinds, " or ")));
  NUMERAL_CHECK(meta("crc32") == std::to_string(tensors_crc32(file.tensors)),
                "{}: corrupt checkpoint: CRC-32 of the tensor data does not match", origin);
  Checkpoint checkpoint;
  checkpoint.kind = meta("kind");
  try {
    checkpoint.config = nlohmann::json::parse(meta("config"));
    checkpoint.state = nlohmann::json::parse(meta("state"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt checkpoint config: {}", origin, e.what());
  }
  checkpoint.tensors = std::move(file.tensors);
  return checkpoint;
}

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module,
                                                  const std::string& prefix) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters()) {
    state[prefix + p.key()] = p.value().detach().to(torch::kCPU).clone();
  }
  for (const auto& b : module.named_buffers()) {
    state[prefix + b.key()] = b.value().detach().to(torch::kCPU).clone();
  }
  return state;
}

void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& prefix, const std::string& origin) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // destination, source
  size_t expected = 0;
  auto plan = [&](const std::string& name, const torch::Tensor& dst) {
    ++expected;
    auto it = state.find(prefix + name);
    NUMERAL_CHECK(it != state.end(),
                  "{}: checkpoint was made for another model: it has no tensor '{}{}'", origin,
                  prefix, name);
    NUMERAL_CHECK(it->second.sizes() == dst.sizes(),
                  "{}: checkpoint was made for another model: '{}{}' has shape {} but this model "
                  "expects {}",
                  origin, prefix, name, it->second.sizes(), dst.sizes());
    copies.emplace_back(dst, it->second);
  };
  for (const auto& p : module.named_parameters()) plan(p.key(), p.value());
  for (const auto& b : module.named_buffers()) plan(b.key(), b.value());
  size_t with_prefix = 0;
  for (const auto& [name, tensor] : state) {
    if (name.compare(0, prefix.size(), prefix) == 0) ++with_prefix;
  }
  NUMERAL_CHECK(with_prefix == expected,
                "{}: checkpoint was made for another model: {} '{}*' tensors, this model has {}",
                origin, with_prefix, prefix, expected);
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
}

torch::Tensor bytes_to_tensor(const std::string& bytes) {
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kByte);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_to_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

}  // namespace numeral
