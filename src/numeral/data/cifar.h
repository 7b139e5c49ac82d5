#pragma once
// The CIFAR-10 and CIFAR-100 binary versions (Krizhevsky 2009,
// https://www.cs.toronto.edu/~kriz/cifar.html): fixed-size records of the label byte(s) then 3,072
// pixel bytes, the 1,024 red, then green, then blue values of a 32x32 image in row-major order.
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin; 1 label byte;
//              class names in batches.meta.txt.
//   CIFAR-100: train.bin, test.bin; 2 label bytes (coarse, fine), the fine label (100 classes) is
//              used; class names in fine_label_names.txt.
// The directory may be the one the archive extracts to (cifar-10-batches-bin, cifar-100-binary)
// or the folder above it.
#include <filesystem>
#include <string>
#include <vector>

#include "numeral/data/dataset.h"

namespace numeral {

struct CifarData {
  int64_t num_classes = 10;  // 10 or 100
  Dataset train, test;       // images [N, 3, 32, 32] uint8, labels [N] int64
  std::vector<std::string> class_names;
  std::filesystem::path dir;  // where the .bin files were
};

// The directory holding a CIFAR-10 or CIFAR-100 binary set at or below `dir`, or "" if none.
std::filesystem::path find_cifar_dir(const std::filesystem::path& dir);

// Reads a CIFAR-10 or CIFAR-100 binary set. Throws numeral::Error for a missing batch, a file whose
// size is not a whole number of records, or a label out of range, naming the file.
CifarData read_cifar(const std::filesystem::path& dir);

// One binary file: records of `label_bytes` label bytes (the last is the label used) and 3,072
// pixel bytes; labels must be below num_classes.
Dataset read_cifar_file(const std::filesystem::path& file, int64_t label_bytes,
                        int64_t num_classes);

}  // namespace numeral
