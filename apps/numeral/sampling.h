#pragma once
// What every generation command (sample, sweep, trajectory) does before it samples.
#include <cstdint>
#include <string>
#include <vector>

#include "numeral/cli.h"
#include "numeral/generate/generate.h"
#include "numeral/train/trainer.h"

namespace numeral::cli {

// A trained model ready to sample from, with the sampler options checked against it.
struct SamplingSetup {
  torch::Device device;
  TrainedModel trained;          // EMA weights on `device`
  int64_t T = 0;                 // the model's number of diffusion steps
  std::vector<int64_t> classes;  // the --digit list checked against the model, or every class
};

// Sets the threads, selects the device, loads `checkpoint`, resolves `generate` for it
// (options_for: a student's own sampler), validates the sampler against its T and resolves
// `digits`; throws numeral::Error on the first problem, before any sampling.
SamplingSetup open_for_sampling(const RuntimeOptions& runtime, const std::string& checkpoint,
                                GenerateOptions& generate, const std::vector<int64_t>& digits);

}  // namespace numeral::cli
