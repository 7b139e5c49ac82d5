#pragma once
// numeral's checkpoint files: safetensors with a magic, a format version, the full config and two
// CRC-32s in the metadata, one of the tensor data and one of the metadata itself. Written
// atomically; loading validates everything before anything is changed.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace numeral {

// Version of the checkpoint layout this build writes; files with a newer version are refused.
// 2: a CRC-32 of the metadata ("crc32_metadata") beside the tensor data's ("crc32").
constexpr int kCheckpointFormatVersion = 2;
// The value of the "format" metadata key in every numeral checkpoint.
constexpr const char* kCheckpointMagic = "numeral-checkpoint";

// The contents of a checkpoint file.
struct Checkpoint {
  std::string kind;                                 // "diffusion", "student" or "classifier"
  nlohmann::json config;                            // everything needed to rebuild the model
  nlohmann::json state = nlohmann::json::object();  // training progress (step, epoch, ...)
  std::map<std::string, torch::Tensor> tensors;     // "model.*", "ema.*", "optimizer", "rng", ...
};

// Writes atomically; the file is either the old one or the complete new one.
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);

// Reads and validates magic, version, kind and both CRCs; errors name the file and the part that
// is wrong.
Checkpoint load_checkpoint(const std::filesystem::path& path, const std::string& expected_kind);
// The same, accepting any of `expected_kinds` (e.g. a trained model or a distilled student).
Checkpoint load_checkpoint(const std::filesystem::path& path,
                           const std::vector<std::string>& expected_kinds);

// Resolves a run directory to its checkpoint file (<dir>/checkpoint.safetensors); files pass
// through unchanged.
std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path_or_run_dir);

// The module's parameters and buffers as "<prefix><name>" -> tensor (CPU copies).
std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module,
                                                  const std::string& prefix);

// Copies "<prefix><name>" tensors into the module. Checks first that every parameter and buffer is
// present with the same shape and that nothing else carries the prefix, so a checkpoint of another
// model fails with a message naming the first mismatch and leaves the module unchanged.
void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& prefix, const std::string& origin);

// Bytes <-> a uint8 tensor, to store opaque blobs (optimizer state, RNG state) in a checkpoint.
torch::Tensor bytes_to_tensor(const std::string& bytes);  // [N] uint8
std::string tensor_to_bytes(const torch::Tensor& t);

}  // namespace numeral
