#include "numeral/data/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/common/lock.h"
#include "numeral/data/cifar.h"
#include "numeral/data/idx.h"
#include "numeral/data/image_folder.h"

namespace numeral {
namespace {

constexpr int64_t kNumClasses = 10;

const std::vector<std::string>& fashion_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

constexpr uint64_t kFnvOffsetBasis = 14695981039346656037ull;  // FNV-1a, 64 bits

}  // namespace

torch::Tensor DataPart::indices_in(const torch::Tensor& labels) const {
  return labels.ge(class_offset)
      .logical_and(labels.lt(class_offset + num_classes))
      .nonzero()
      .reshape({-1});
}

std::vector<std::string> default_class_names(const std::string& data, int64_t num_classes) {
  if (data == "fashion-mnist" && num_classes == kNumClasses) return fashion_class_names();
  std::vector<std::string> names;
  for (int64_t i = 0; i < num_classes; ++i) names.push_back(std::to_string(i));
  return names;
}

namespace {

// The first regular file named <prefix>-<kind>{-,.}idx<d>-ubyte[.gz] in dir, or "".
fs::path find_file(const fs::path& dir, std::initializer_list<const char*> prefixes,
                   const char* kind, std::initializer_list<const char*> idx_dims) {
  for (const char* prefix : prefixes) {
    for (const fs::path& path : idx_file_names(dir, prefix, kind, idx_dims)) {
      std::error_code ec;
      if (fs::is_regular_file(path, ec)) return path;
    }
  }
  return {};
}

// source.json's field `key`, or "" when the file or the field is absent or unreadable.
std::string source_json_field(const fs::path& dir, const char* key) {
  const fs::path path = dir / "source.json";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "";
  std::ifstream in(path);
  const nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains(key) || !json[key].is_string()) return "";
  return json[key].get<std::string>();
}

bool same_dir(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

std::string dataset_source(const fs::path& dir) {
  std::string source = source_json_field(dir, "source");
  if (!source.empty()) return source;
  if (same_dir(dir, kFashionMnistSystemDir)) {
    return fmt::format("Debian's dataset-fashion-mnist package ({})", kFashionMnistSystemDir);
  }
  return fmt::format("IDX files in {}", dir.string());
}

// Reads one split: images [N, C, H, W] uint8 and labels [N] int64 in [0, num_classes).
Dataset load_pair(const fs::path& images_path, const fs::path& labels_path) {
  torch::Tensor images = read_idx(images_path);
  if (images.dim() == 3) {
    images = images.unsqueeze(1);
  } else if (images.dim() == 4) {
    images = images.permute({0, 3, 1, 2}).contiguous();
  } else {
    fail("{}: expected images of shape [N, H, W] or [N, H, W, C], found {}", images_path.string(),
         images.sizes());
  }
  const torch::Tensor labels = read_idx(labels_path);
  NUMERAL_CHECK(labels.dim() == 1, "{}: expected labels of shape [N], found {}",
                labels_path.string(), labels.sizes());
  NUMERAL_CHECK(images.size(0) == labels.size(0),
                "{} and {}: images and labels have different counts: {} vs {}",
                images_path.string(), labels_path.string(), images.size(0), labels.size(0));
  const torch::Tensor bad = (labels >= kNumClasses).nonzero();
  if (bad.size(0) > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    fail("{}: label {} at index {} is out of range, expected 0 to {}", labels_path.string(),
         labels[i].item<int64_t>(), i, kNumClasses - 1);
  }
  return Dataset{images, labels.to(torch::kInt64)};
}

struct ResolvedData {
  std::string name;
  fs::path dir;
  bool fashion = false;
};

bool has_train_images(const fs::path& dir) {
  return !find_file(dir, {"train"}, "images", {"3", "4"}).empty();
}

ResolvedData resolve(const DataOptions& options, const fs::path& root) {
  const std::string& name = options.data;
  if (name == "mnist") {
    const fs::path dir = root / "mnist";
    NUMERAL_CHECK(has_train_images(dir), "mnist is not in {}: run `numeral data get mnist`",
                  dir.string());
    return {name, dir, false};
  }
  if (name == "fashion-mnist") {
    const fs::path dir = root / "fashion-mnist";
    if (has_train_images(dir)) return {name, dir, true};
    NUMERAL_CHECK(has_train_images(kFashionMnistSystemDir),
                  "fashion-mnist is in neither {} nor {}: run `apt-get install "
                  "dataset-fashion-mnist` (then `numeral data get fashion-mnist`)",
                  dir.string(), kFashionMnistSystemDir);
    return {name, kFashionMnistSystemDir, true};
  }
  std::error_code ec;
  // A bare name the data root holds (what `numeral data make colored-mnist` writes there).
  if (!fs::is_directory(name, ec) && !name.empty() && name.find('/') == std::string::npos &&
      fs::is_directory(root / name, ec)) {
    return {name, root / name, source_json_field(root / name, "name") == "fashion-mnist"};
  }
  NUMERAL_CHECK(fs::is_directory(name, ec),
                "unknown dataset '{}': expected mnist, fashion-mnist, a dataset in {} or a "
                "directory of IDX files, CIFAR binary files or class folders of images",
                name, root.string());
  const bool fashion =
      source_json_field(name, "name") == "fashion-mnist" || same_dir(name, kFashionMnistSystemDir);
  return {name, name, fashion};
}

void fnv1a_u64(uint64_t& hash, uint64_t value) {
  constexpr uint64_t kFnvPrime = 1099511628211ull;
  for (int byte = 0; byte < 8; ++byte) {
    hash ^= (value >> (8 * byte)) & 0xff;
    hash *= kFnvPrime;
  }
}

// Uniform in [0, bound) from mt19937_64's output alone (std::uniform_int_distribution differs
// between standard libraries): rejection of the biased low range, then modulo.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  uint64_t r = rng();
  while (r < threshold) r = rng();
  return r % bound;
}

}  // namespace

fs::path data_root(const DataOptions& options) {
  if (!options.root.empty()) return options.root;
  const char* env = std::getenv("NUMERAL_DATA");
  if (env != nullptr && *env != '\0') return env;
  return "data";
}

std::vector<fs::path> idx_file_names(const fs::path& dir, const std::string& prefix,
                                     const std::string& kind,
                                     std::initializer_list<const char*> idx_dims) {
  std::vector<fs::path> names;
  for (const char* sep : {"-", "."}) {
    for (const char* d : idx_dims) {
      for (const char* ext : {"", ".gz"}) {
        names.push_back(dir / fmt::format("{}-{}{}idx{}-ubyte{}", prefix, kind, sep, d, ext));
      }
    }
  }
  return names;
}

IdxFiles find_idx_files(const fs::path& dir) {
  IdxFiles files;
  files.train_images = find_file(dir, {"train"}, "images", {"3", "4"});
  files.train_labels = find_file(dir, {"train"}, "labels", {"1"});
  files.test_images = find_file(dir, {"t10k", "test"}, "images", {"3", "4"});
  files.test_labels = find_file(dir, {"t10k", "test"}, "labels", {"1"});
  return files;
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  NUMERAL_CHECK(n >= 0, "seeded_permutation: expected a non-negative count, got {}", n);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

uint64_t split_fingerprint(const torch::Tensor& indices, const torch::Tensor& labels) {
  NUMERAL_CHECK(indices.dim() == 1 && labels.dim() == 1 && indices.size(0) == labels.size(0),
                "split_fingerprint: expected 1-D indices and labels of one length, got {} and {}",
                indices.sizes(), labels.sizes());
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kInt64).contiguous();
  const torch::Tensor lab = labels.to(torch::kCPU, torch::kInt64).contiguous();
  const auto* ip = idx.data_ptr<int64_t>();
  const auto* lp = lab.data_ptr<int64_t>();
  uint64_t hash = kFnvOffsetBasis;
  for (int64_t i = 0; i < idx.size(0); ++i) {
    fnv1a_u64(hash, static_cast<uint64_t>(ip[i]));
    fnv1a_u64(hash, static_cast<uint64_t>(lp[i]));
  }
  return hash;
}

uint64_t leading_val_fingerprint(const std::vector<DataPart>& parts, size_t count) {
  NUMERAL_CHECK(count >= 1 && count <= parts.size(), "leading_val_fingerprint: {} of {} sources",
                count, parts.size());
  if (count == 1) return parts.front().val_fingerprint;
  uint64_t fingerprint = kFnvOffsetBasis;
  for (size_t i = 0; i < count; ++i) {
    fnv1a_u64(fingerprint, parts[i].val_fingerprint);
    fnv1a_u64(fingerprint, static_cast<uint64_t>(parts[i].num_classes));
  }
  return fingerprint;
}

uint64_t combine_fingerprints(uint64_t first, uint64_t second) {
  uint64_t hash = kFnvOffsetBasis;
  fnv1a_u64(hash, first);
  fnv1a_u64(hash, second);
  return hash;
}

uint64_t content_fingerprint(const Dataset& data) {
  const torch::Tensor pixels = data.images.to(torch::kCPU, torch::kUInt8).contiguous();
  const torch::Tensor labels = data.labels.to(torch::kCPU, torch::kInt64).contiguous();
  uint64_t hash = kFnvOffsetBasis;
  constexpr uint64_t kFnvPrime = 1099511628211ull;
  const auto* p = pixels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < pixels.numel(); ++i) {
    hash ^= p[i];
    hash *= kFnvPrime;
  }
  const auto* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) fnv1a_u64(hash, static_cast<uint64_t>(l[i]));
  return hash;
}

torch::Tensor split_val_indices(int64_t n, double val_fraction, uint64_t seed) {
  NUMERAL_CHECK(n > 0, "split_val_indices: expected a positive count, got {}", n);
  NUMERAL_CHECK(val_fraction >= 0.0 && val_fraction < 1.0,
                "split_val_indices: val_fraction must be in [0, 1), got {}", val_fraction);
  const int64_t n_val = std::llround(static_cast<double>(n) * val_fraction);
  NUMERAL_CHECK(n_val < n, "split_val_indices: holding out {} of {} items leaves none to train on",
                n_val, n);
  std::vector<int64_t> perm = seeded_permutation(n, seed);
  perm.resize(n_val);
  std::sort(perm.begin(), perm.end());
  return torch::tensor(perm, torch::kInt64).reshape({n_val});
}

namespace {

// What a source yields before the split: its training images, its test images if it has a test
// split (size 0 otherwise), the class names and where it came from.
struct SourceData {
  Dataset train, test;
  std::vector<std::string> class_names;
  std::string source;
  std::string test_name;  // e.g. "t10k-images-idx3-ubyte", "test_batch.bin"
};

// IDX files (MNIST's format): train-* and, if present, t10k-* or test-*.
SourceData read_idx_source(const ResolvedData& resolved, const IdxFiles& files) {
  NUMERAL_CHECK(files.test_images.empty() == files.test_labels.empty(),
                "{}: found {} but not the matching test {} file", resolved.dir.string(),
                files.test_images.empty() ? files.test_labels.filename().string()
                                          : files.test_images.filename().string(),
                files.test_images.empty() ? "images" : "labels");
  SourceData s;
  s.source = dataset_source(resolved.dir);
  s.class_names = default_class_names(resolved.fashion ? "fashion-mnist" : "mnist", kNumClasses);
  s.train = load_pair(files.train_images, files.train_labels);
  if (!files.test_images.empty()) {
    s.test = load_pair(files.test_images, files.test_labels);
    s.test_name = files.test_images.filename().string();
  }
  return s;
}

// Class folders of images: DIR/train/<class>/ and DIR/test/<class>/ when DIR/train is one, else
// DIR/<class>/ with no test split. Each image is fitted to the options' size and channels as it
// is read (once, from its own pixels); the test images to the training images'.
SourceData read_folder_source(const fs::path& dir, const DataOptions& options) {
  const bool has_train = looks_like_image_folder(dir / "train");
  const fs::path train_dir = has_train ? dir / "train" : dir;
  ImageFolderOptions fit;
  fit.image_size = options.image_size;
  fit.channels = options.channels;
  ImageFolderData train = read_image_folder(train_dir, fit);
  SourceData s;
  s.train = train.data;
  s.class_names = train.class_names;
  std::vector<std::string> warnings = train.warnings;
  if (has_train && looks_like_image_folder(dir / "test")) {
    ImageFolderOptions o;
    o.image_size = train.data.images.size(2);
    o.channels = train.data.images.size(1);
    ImageFolderData test = read_image_folder(dir / "test", o);
    NUMERAL_CHECK(test.class_names == train.class_names,
                  "{}: the test folder's classes differ from the training folder's", dir.string());
    s.test = test.data;
    s.test_name = "test/";
    warnings.insert(warnings.end(), test.warnings.begin(), test.warnings.end());
  }
  s.source = fmt::format("image folder {} ({} classes, {}x{} {})", dir.string(),
                         s.class_names.size(), s.train.images.size(2), s.train.images.size(3),
                         s.train.images.size(1) == 3 ? "RGB" : "grey");
  if (!warnings.empty()) {
    s.source += fmt::format("; {} files skipped, e.g. {}", warnings.size(), warnings.front());
  }
  return s;
}

SourceData read_cifar_source(const fs::path& dir) {
  CifarData c = read_cifar(dir);
  SourceData s;
  s.train = c.train;
  s.test = c.test;
  s.class_names = c.class_names;
  s.test_name = "the CIFAR test batch";
  s.source = fmt::format("CIFAR-{} binary files in {}", c.num_classes, c.dir.string());
  return s;
}

}  // namespace

namespace {

// One source (load_data without commas).
DataSplit load_one(const DataOptions& options) {
  const fs::path root = data_root(options);
  const ResolvedData resolved = resolve(options, root);
  const IdxFiles files = find_idx_files(resolved.dir);
  const bool idx = !files.train_images.empty() && !files.train_labels.empty();
  const fs::path cifar_dir = idx ? fs::path() : find_cifar_dir(resolved.dir);
  const bool folder =
      !idx && cifar_dir.empty() &&
      (looks_like_image_folder(resolved.dir) || looks_like_image_folder(resolved.dir / "train"));
  NUMERAL_CHECK(idx || !cifar_dir.empty() || folder,
                "{}: no training data: expected IDX files (train-images-idx3-ubyte[.gz] and "
                "train-labels-idx1-ubyte[.gz]), CIFAR binary files or class folders of images{}",
                resolved.dir.string(),
                resolved.name == "mnist" ? " (run `numeral data get mnist`)" : "");

  // An export commits its images and labels under the exclusive lock: never read half a pair.
  const DirectoryLock pair_lock(resolved.dir, DirectoryLock::Mode::kShared);
  SourceData source = idx                  ? read_idx_source(resolved, files)
                      : !cifar_dir.empty() ? read_cifar_source(cifar_dir)
                                           : read_folder_source(resolved.dir, options);
  // Every source at the asked-for size and channels (a no-op where it already is; nothing asked,
  // nothing changes, not even a non-square source).
  for (Dataset* d : {&source.train, &source.test}) {
    if (d->size() == 0 || (options.image_size == 0 && options.channels == 0)) continue;
    d->images =
        fit_images(d->images, options.image_size > 0 ? options.image_size : d->images.size(2),
                   options.channels > 0 ? options.channels : d->images.size(1));
  }
  DataSplit split;
  split.name = resolved.name;
  split.dir = resolved.dir;
  split.source = source.source;
  split.num_classes = static_cast<int64_t>(source.class_names.size());
  split.class_names = source.class_names;

  Dataset train = std::move(source.train);
  if (source.test.size() > 0) {
    split.val = std::move(source.test);
    NUMERAL_CHECK(split.val.images.sizes().slice(1).equals(train.images.sizes().slice(1)),
                  "{}: test images are {} but train images are {} (shapes as [C, H, W])",
                  source.test_name, split.val.images.sizes().slice(1),
                  train.images.sizes().slice(1));
    split.train = std::move(train);
    split.split = fmt::format("the test files: {} validation images from {}",
                              with_commas(split.val.size()), source.test_name);
    split.val_fingerprint =
        split_fingerprint(torch::arange(split.val.size(), torch::kInt64), split.val.labels);
    return split;
  }
  const int64_t n = train.size();
  const torch::Tensor val_idx = split_val_indices(n, options.val_fraction, options.split_seed);
  torch::Tensor is_val = torch::zeros({n}, torch::kBool);
  is_val.index_fill_(0, val_idx, true);
  const torch::Tensor train_idx = is_val.logical_not().nonzero().reshape({-1});
  split.val = Dataset{train.images.index_select(0, val_idx), train.labels.index_select(0, val_idx)};
  split.train =
      Dataset{train.images.index_select(0, train_idx), train.labels.index_select(0, train_idx)};
  split.split = fmt::format(
      "seeded split: {} of the {} training images held out for validation ({:g}%, seed {}); no "
      "test files",
      with_commas(split.val.size()), with_commas(n), options.val_fraction * 100.0,
      options.split_seed);
  split.val_fingerprint = split_fingerprint(val_idx, split.val.labels);
  return split;
}

}  // namespace

std::vector<std::string> data_source_names(const std::string& list) {
  std::vector<std::string> names;
  for (size_t start = 0;;) {
    const size_t comma = list.find(',', start);
    names.push_back(list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    NUMERAL_CHECK(!names[i].empty(), "--data {}: an empty name in the list", list);
    for (size_t j = 0; j < i; ++j) {
      NUMERAL_CHECK(names[i] != names[j], "--data {}: {} is listed twice", list, names[i]);
    }
  }
  return names;
}

DataSplit load_data(const DataOptions& options) {
  // Checked before any file is read, once for every source of a mix.
  NUMERAL_CHECK(options.image_size >= 0 &&
                    (options.channels == 0 || options.channels == 1 || options.channels == 3),
                "data: image size {} and channels {} (expected >= 0 and 0, 1 or 3)",
                options.image_size, options.channels);
  const std::vector<std::string> names = data_source_names(options.data);
  if (names.size() == 1) {
    DataSplit one = load_one(options);
    one.parts = {{one.name, 0, one.num_classes, one.val_fingerprint}};
    return one;
  }
  // A mix: the sources one after another, each fitted to the first's size and channels (or the
  // asked-for ones), their labels offset so the classes follow one another.
  DataSplit mix;
  mix.name = options.data;
  mix.num_classes = 0;
  std::vector<torch::Tensor> train_x, train_y, val_x, val_y;
  std::vector<std::string> sources, splits;
  for (const auto& name : names) {
    DataOptions one = options;
    one.data = name;
    if (!train_x.empty()) {
      one.image_size = train_x.front().size(2);
      one.channels = train_x.front().size(1);
    }
    const DataSplit part = load_one(one);
    if (mix.dir.empty()) mix.dir = part.dir;
    mix.parts.push_back({part.name, mix.num_classes, part.num_classes, part.val_fingerprint});
    train_x.push_back(part.train.images);
    train_y.push_back(part.train.labels + mix.num_classes);
    val_x.push_back(part.val.images);
    val_y.push_back(part.val.labels + mix.num_classes);
    for (const auto& c : part.class_names) mix.class_names.push_back(c);
    mix.num_classes += part.num_classes;
    sources.push_back(fmt::format("{}: {}", part.name, part.source));
    splits.push_back(fmt::format("{}: {}", part.name, part.split));
  }
  // Names shared by two sources ("0" in two digit sets) get their source's name in front.
  std::vector<std::string> named = mix.class_names;
  for (size_t i = 0; i < named.size(); ++i) {
    if (std::count(mix.class_names.begin(), mix.class_names.end(), mix.class_names[i]) == 1)
      continue;
    for (const auto& part : mix.parts) {
      if (part.holds(static_cast<int64_t>(i))) {
        named[i] = fs::path(part.name).filename().string() + ":" + mix.class_names[i];
      }
    }
  }
  mix.class_names = named;
  mix.train = Dataset{torch::cat(train_x), torch::cat(train_y)};
  mix.val = Dataset{torch::cat(val_x), torch::cat(val_y)};
  mix.source = fmt::format("{}", fmt::join(sources, "; "));
  mix.split = fmt::format("{}", fmt::join(splits, "; "));
  mix.val_fingerprint = leading_val_fingerprint(mix.parts, mix.parts.size());
  return mix;
}

torch::Tensor to_model_range(const torch::Tensor& images) {
  NUMERAL_CHECK(images.scalar_type() == torch::kUInt8,
                "to_model_range: expected uint8 pixels, got {}",
                c10::toString(images.scalar_type()));
  return images.to(torch::kFloat32).div(127.5).sub(1.0);
}

torch::Tensor from_model_range(const torch::Tensor& x) {
  NUMERAL_CHECK(x.is_floating_point(), "from_model_range: expected a floating-point tensor, got {}",
                c10::toString(x.scalar_type()));
  return torch::nan_to_num(x.to(torch::kFloat32), 0.0)
      .clamp(-1.0, 1.0)
      .add(1.0)
      .mul(127.5)
      .round()
      .to(torch::kUInt8);
}

DatasetSummary describe_dataset(const std::string& name, const fs::path& dir) {
  const IdxFiles files = find_idx_files(dir);
  NUMERAL_CHECK(!files.train_images.empty() && !files.train_labels.empty(),
                "{}: no IDX training files: expected train-images-idx3-ubyte[.gz] and "
                "train-labels-idx1-ubyte[.gz]",
                dir.string());
  auto count = [](const fs::path& images, const fs::path& labels) {
    const std::vector<int64_t> image_dims = read_idx_shape(images);
    const std::vector<int64_t> label_dims = read_idx_shape(labels);
    NUMERAL_CHECK(label_dims.size() == 1, "{}: expected labels of shape [N], found {}",
                  labels.string(), c10::IntArrayRef(label_dims));
    NUMERAL_CHECK(image_dims[0] == label_dims[0],
                  "{} and {}: images and labels have different counts: {} vs {}", images.string(),
                  labels.string(), image_dims[0], label_dims[0]);
    return image_dims[0];
  };
  DatasetSummary summary;
  summary.name = name;
  summary.dir = dir;
  summary.train = count(files.train_images, files.train_labels);
  if (!files.test_images.empty() && !files.test_labels.empty()) {
    summary.test = count(files.test_images, files.test_labels);
  }
  summary.source = dataset_source(dir);
  return summary;
}

std::vector<DatasetSummary> find_datasets(const fs::path& root) {
  std::vector<DatasetSummary> found;
  auto add = [&](const std::string& name, const fs::path& dir) {
    try {
      found.push_back(describe_dataset(name, dir));
    } catch (const Error& e) {
      found.push_back(DatasetSummary{name, dir, 0, 0, fmt::format("unreadable: {}", e.what())});
    }
  };
  if (has_train_images(root / "mnist")) add("mnist", root / "mnist");
  if (has_train_images(root / "fashion-mnist")) {
    add("fashion-mnist", root / "fashion-mnist");
  } else if (has_train_images(kFashionMnistSystemDir)) {
    add("fashion-mnist", kFashionMnistSystemDir);
  }
  return found;
}

Dataset first_per_class(const Dataset& data, int64_t per_class, int64_t num_classes) {
  NUMERAL_CHECK(per_class >= 1, "per_class must be at least 1, got {}", per_class);
  std::vector<torch::Tensor> picks;
  for (int64_t c = 0; c < num_classes; ++c) {
    const auto idx = data.labels.eq(c).nonzero().flatten();
    NUMERAL_CHECK(idx.size(0) >= per_class, "class {} has only {} examples, {} requested", c,
                  idx.size(0), per_class);
    picks.push_back(idx.slice(0, 0, per_class));
  }
  const auto idx = torch::cat(picks);
  return Dataset{data.images.index_select(0, idx), data.labels.index_select(0, idx)};
}

}  // namespace numeral
