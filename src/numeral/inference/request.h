#pragma once
// What a caller asks a model for: the typed request that the CLI's flags and the server's JSON are
// both bound to (fields defined once, in describe below), and how it is executed.
#include <cstdint>
#include <vector>

#include "numeral/common/fields.h"
#include "numeral/diffusion/samplers.h"

namespace numeral {

// The guidance weight w used when none is given (numeral sample, trajectory, eval, serve, ...) and
// the model's file names none of its own (TrainedModel::default_w; a distilled student's does).
// Chosen by `numeral eval sweep` on the shipped model (README, "Choosing the guidance weight"):
// w = 0.25 gives the lowest classifier-FID of the sweep and within-class diversity 0.95 of real
// digits', with an accuracy close to the judge's own on real digits (98.45% against 98.95%);
// w = 0 draws the wrong digit about once in 25, and every w above 0.25 buys accuracy with FID and
// diversity.
constexpr double kDefaultGuidance = 0.25;

// The most images one request may ask for: IDX files count their items in 32 bits.
constexpr int64_t kMaxRequestImages = 2147483647;

// A generation request: which images, and how to sample them.
struct GenerateRequest {
  std::vector<int64_t> classes;  // empty: every class of the model
  int64_t per_class = 8;
  bool unconditional = false;  // the null label for every image (rows unlabelled, w unused)
  double w = kDefaultGuidance;
  std::vector<int64_t> w_interval;  // guidance only at timesteps t_min <= t <= t_max; empty: all
  double w_guide = 0;               // autoguidance weight, against the model's guide
  uint64_t seed = 0;
  SamplerOptions sampler;

  // The number of images asked for: per_class x the number of classes (all of `num_classes` when
  // `classes` is empty).
  int64_t count(int64_t num_classes) const;
};

template <class V>
void describe(GenerateRequest& r, V& v) {
  v("classes", r.classes, "classes to generate, e.g. 7 or 1,4,7 (default: every class)",
    at_least(0));
  v("per_class", r.per_class, "images per class (one grid row each)", at_least(1));
  v("unconditional", r.unconditional, "ignore the labels (the null class); rows are unlabelled");
  v("w", r.w,
    "classifier-free guidance weight: eps = (1+w) eps(y) - w eps(null); 0 = plain conditional "
    "(default: the model's own, 0.25 unless its file names another)",
    finite());
  v("w_interval", r.w_interval,
    "guide only at timesteps t_min <= t <= t_max, e.g. 10,70 (t counts down from T-1, pure noise, "
    "to 0); other steps call the model once, unguided (default: every step)",
    at_least(0));
  v("w_guide", r.w_guide,
    "autoguidance weight: eps += w_guide (eps(y) - eps_guide(y)), against the weaker model the "
    "file bundles or --guide loads; adds one call of the guide per step (default: the model's "
    "own, 0 unless its file bundles a guide)",
    finite());
  v("seed", r.seed, "same seed, model and request: the same images on any device");
  describe(r.sampler, v);
}

// The arithmetic of the network's calls while sampling. bfloat16 (8 bits of mantissa) runs the
// convolutions at about 2.5 times float32's rate on CPUs with AVX512-BF16 (oneDNN's brgconv; also
// on GPUs); the sampler's own arithmetic, the embeddings and GroupNorm's statistics stay float32.
enum class Precision { float32, bfloat16 };
NUMERAL_ENUM_NAMES(Precision, {Precision::float32, "float32"}, {Precision::bfloat16, "bfloat16"});

// How a request is executed: changes the speed (forward_batch, precision) or, for batch_size, which
// noise each image draws, and for precision, the images by rounding; never part of what a server
// client asks.
struct ExecutionOptions {
  int64_t batch_size = 256;   // images sampled together; batch b's noise is seeded by (seed, b)
  int64_t forward_batch = 0;  // images per network call (guidance doubles a batch); 0 = auto
  Precision precision = Precision::float32;
};

template <class V>
void describe(ExecutionOptions& e, V& v) {
  v("batch_size", e.batch_size,
    "images sampled together; batch b's noise is seeded by (seed, b), so changing it changes the "
    "images",
    at_least(1));
  v("forward_batch", e.forward_batch,
    "images per network call (0 = auto: 256 on a CPU, whole batches on a GPU); changes the speed, "
    "not the images",
    at_least(0));
  v("precision", e.precision,
    "the network's arithmetic: float32, or bfloat16 (about twice as fast on CPUs with "
    "AVX512-BF16; the images differ from float32's by rounding)");
}

}  // namespace numeral
