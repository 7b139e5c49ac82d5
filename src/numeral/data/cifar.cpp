#include "numeral/data/cifar.h"

#include <fstream>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"

namespace numeral {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixelBytes = 3 * 32 * 32;

bool is_cifar10(const fs::path& dir) {
  return fs::exists(dir / "data_batch_1.bin") && fs::exists(dir / "test_batch.bin");
}

bool is_cifar100(const fs::path& dir) {
  return fs::exists(dir / "train.bin") && fs::exists(dir / "test.bin");
}

// Non-empty lines of a names file, or "0".."k-1" when it is absent or has the wrong count.
std::vector<std::string> class_names(const fs::path& file, int64_t k) {
  std::vector<std::string> names;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (static_cast<int64_t>(names.size()) == k) return names;
  names.clear();
  for (int64_t i = 0; i < k; ++i) names.push_back(std::to_string(i));
  return names;
}

Dataset concat(const std::vector<Dataset>& parts) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& p : parts) images.push_back(p.images), labels.push_back(p.labels);
  return Dataset{torch::cat(images), torch::cat(labels)};
}

}  // namespace

fs::path find_cifar_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  for (const fs::path& candidate : {dir, dir / "cifar-10-batches-bin", dir / "cifar-100-binary"}) {
    if (is_cifar10(candidate) || is_cifar100(candidate)) return candidate;
  }
  return {};
}

Dataset read_cifar_file(const fs::path& file, int64_t label_bytes, int64_t num_classes) {
  NUMERAL_CHECK(fs::exists(file), "{}: no such file", file.string());
  const std::string bytes = read_file(file);
  const int64_t record = label_bytes + kPixelBytes;
  const auto size = static_cast<int64_t>(bytes.size());
  NUMERAL_CHECK(size > 0 && size % record == 0,
                "{}: {} bytes is not a whole number of {}-byte CIFAR records (truncated, or not "
                "a CIFAR binary file)",
                file.string(), size, record);
  const int64_t n = size / record;
  auto all = torch::from_blob(const_cast<char*>(bytes.data()), {n, record}, torch::kUInt8).clone();
  const auto labels = all.select(1, label_bytes - 1).to(torch::kInt64);
  const auto bad = labels.ge(num_classes).nonzero();
  if (bad.size(0) > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    fail("{}: record {} has label {}, expected 0 to {}", file.string(), i,
         labels[i].item<int64_t>(), num_classes - 1);
  }
  const auto images = all.slice(1, label_bytes).reshape({n, 3, 32, 32}).contiguous();
  return Dataset{images, labels};
}

CifarData read_cifar(const fs::path& dir) {
  const fs::path found = find_cifar_dir(dir);
  NUMERAL_CHECK(!found.empty(),
                "{}: no CIFAR binary files: expected data_batch_1.bin .. data_batch_5.bin and "
                "test_batch.bin (CIFAR-10) or train.bin and test.bin (CIFAR-100)",
                dir.string());
  CifarData c;
  c.dir = found;
  if (is_cifar10(found)) {
    c.num_classes = 10;
    std::vector<Dataset> parts;
    for (int b = 1; b <= 5; ++b) {
      const fs::path file = found / fmt::format("data_batch_{}.bin", b);
      NUMERAL_CHECK(fs::exists(file), "{}: CIFAR-10 training batch {} is missing", file.string(),
                    b);
      parts.push_back(read_cifar_file(file, 1, 10));
    }
    c.train = concat(parts);
    c.test = read_cifar_file(found / "test_batch.bin", 1, 10);
    c.class_names = class_names(found / "batches.meta.txt", 10);
  } else {
    c.num_classes = 100;
    c.train = read_cifar_file(found / "train.bin", 2, 100);
    c.test = read_cifar_file(found / "test.bin", 2, 100);
    c.class_names = class_names(found / "fine_label_names.txt", 100);
  }
  return c;
}

}  // namespace numeral
