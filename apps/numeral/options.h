#pragma once
// Flag bindings for the config structs: each field gets its flag, default and help text here, once.
#include <CLI/CLI.hpp>

#include "numeral/diffusion/samplers.h"
#include "numeral/diffusion/schedule.h"
#include "numeral/generate/generate.h"
#include "numeral/model/config.h"
#include "numeral/train/config.h"

namespace numeral::cli {

// --image-size, --channels, --attention, ... bound to a UNetConfig.
void add_model_options(CLI::App& command, UNetConfig& config);
// --timesteps, --schedule, --prediction, ... bound to a DiffusionConfig.
void add_diffusion_options(CLI::App& command, DiffusionConfig& config);
// --epochs, --batch-size, --lr, ... bound to a TrainConfig.
void add_train_options(CLI::App& command, TrainConfig& config);
// --sampler, --steps, --eta, --variance, --no-clip bound to SamplerOptions.
void add_sampler_options(CLI::App& command, SamplerOptions& options);
// --teacher, --from-steps, --to-steps, --round-steps, --w-min, --w-max bound to a DistillConfig.
void add_distill_options(CLI::App& command, DistillConfig& config);
// --batch-size and --forward-batch bound to GenerateOptions (the sampler and seed are separate).
void add_generate_options(CLI::App& command, GenerateOptions& options);

}  // namespace numeral::cli
