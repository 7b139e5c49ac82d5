#pragma once
// Datasets numeral makes from others, reproducibly.
#include <cstdint>

#include "numeral/data/dataset.h"

namespace numeral {

// Colored MNIST: each 28x28 grey digit centred on a 32x32 RGB canvas, drawn in one of 8 bright
// colours on one of 8 dark backgrounds, both picked per image from (seed, index) alone (so the
// same digits and seed give the same images anywhere). The pixel is
// background * (1 - a) + foreground * a with a = grey / 255. Colours say nothing about the class:
// a model must learn them as style. Images [N, 1, 28, 28] uint8 -> [N, 3, 32, 32] uint8.
Dataset colored_digits(const Dataset& grey, uint64_t seed);

}  // namespace numeral
