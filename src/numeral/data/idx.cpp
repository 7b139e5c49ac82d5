#include "numeral/data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include "numeral/common/error.h"
#include "numeral/common/fs.h"

namespace numeral {
namespace {

constexpr uint8_t kIdxUnsignedByte = 0x08;
constexpr int kIdxMaxDims = 4;
// Larger payloads mean a corrupt header, not a dataset numeral could train on.
constexpr int64_t kIdxMaxBytes = int64_t{1} << 32;

bool is_gzip(const fs::path& path) {
  unsigned char magic[2] = {0, 0};
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  const size_t got = std::fread(magic, 1, 2, file);
  std::fclose(file);
  return got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// Reads a raw or gzip file through zlib (which passes non-gzip content through unchanged) and
// turns zlib's errors into one-line messages naming the file.
class IdxInput {
 public:
  explicit IdxInput(const fs::path& path) : path_(path) {
    NUMERAL_CHECK(fs::exists(path), "{}: no such file", path.string());
    NUMERAL_CHECK(!fs::is_directory(path), "{}: is a directory, expected an IDX file",
                  path.string());
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    NUMERAL_CHECK(!ec, "{}: cannot read: {}", path.string(), ec.message());
    NUMERAL_CHECK(size > 0, "{}: empty file, expected an IDX file", path.string());
    gzip_ = is_gzip(path);
    file_ = gzopen(path.c_str(), "rb");
    NUMERAL_CHECK(file_ != nullptr, "{}: cannot open: {}", path.string(), std::strerror(errno));
    gzbuffer(file_, 1 << 20);
  }
  ~IdxInput() { gzclose(file_); }
  IdxInput(const IdxInput&) = delete;
  IdxInput& operator=(const IdxInput&) = delete;

  // Reads up to n bytes; returns how many were read (fewer only at the end of the data).
  int64_t read(void* dst, int64_t n) {
    auto* out = static_cast<char*>(dst);
    int64_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<int64_t>(n - done, 1 << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) fail_with_zlib_error();
      if (got == 0) break;
      done += got;
    }
    if (done < n) {
      int code = Z_OK;
      gzerror(file_, &code);
      if (code != Z_OK && code != Z_BUF_ERROR) fail_with_zlib_error();
      truncated_gzip_ = code == Z_BUF_ERROR;
    }
    return done;
  }

  // Whether a read stopped because a .gz file ends before its gzip stream does.
  bool truncated_gzip() const { return truncated_gzip_; }

  // " (the gzip stream ends early)" after a short read of a truncated .gz, else "".
  std::string truncation_note() const {
    return truncated_gzip_ ? " (the gzip stream ends early)" : "";
  }

 private:
  [[noreturn]] void fail_with_zlib_error() {
    int code = Z_OK;
    std::string message = gzerror(file_, &code);
    if (code == Z_ERRNO) fail("{}: read error: {}", path_.string(), std::strerror(errno));
    // zlib prefixes its messages with the path.
    const std::string prefix = path_.string() + ": ";
    if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
    fail("{}: corrupt {}data: {}", path_.string(), gzip_ ? "gzip " : "", message);
  }

  fs::path path_;
  gzFile file_ = nullptr;
  bool gzip_ = false;
  bool truncated_gzip_ = false;
};

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void put_be32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

// Reads and checks the header: magic 0x0000080N, then N positive big-endian 32-bit dimensions.
std::vector<int64_t> read_header(IdxInput& in, const fs::path& path) {
  unsigned char magic[4];
  const int64_t got = in.read(magic, 4);
  NUMERAL_CHECK(got == 4, "{}: truncated IDX header: expected 4 bytes of magic number, found {}{}",
                path.string(), got, in.truncation_note());
  NUMERAL_CHECK(magic[0] == 0 && magic[1] == 0,
                "{}: not an IDX file: magic number 0x{:08x}, expected 0x0000080N (N = 1 to 4)",
                path.string(), read_be32(magic));
  NUMERAL_CHECK(magic[2] == kIdxUnsignedByte,
                "{}: unsupported IDX data type 0x{:02x}, expected 0x08 (unsigned byte)",
                path.string(), magic[2]);
  const int ndims = magic[3];
  NUMERAL_CHECK(ndims >= 1 && ndims <= kIdxMaxDims,
                "{}: IDX file has {} dimensions, expected 1 to {}", path.string(), ndims,
                kIdxMaxDims);
  std::array<unsigned char, 4 * kIdxMaxDims> raw{};
  const int64_t got_dims = in.read(raw.data(), 4 * ndims);
  NUMERAL_CHECK(got_dims == 4 * ndims,
                "{}: truncated IDX header: expected {} bytes of dimensions, found {}{}",
                path.string(), 4 * ndims, got_dims, in.truncation_note());
  std::vector<int64_t> dims(ndims);
  int64_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    const auto dim = static_cast<int32_t>(read_be32(raw.data() + 4 * i));
    NUMERAL_CHECK(dim > 0, "{}: IDX dimension {} is {}, expected a positive size", path.string(), i,
                  dim);
    dims[i] = dim;
    total *= dim;
    NUMERAL_CHECK(total <= kIdxMaxBytes,
                  "{}: IDX dimensions claim more than {} bytes of data; the header is corrupt",
                  path.string(), kIdxMaxBytes);
  }
  return dims;
}

const char* payload_noun(size_t ndims) {
  if (ndims == 1) return "labels";
  if (ndims >= 3) return "pixels";
  return "data";
}

// Compresses `header` + `payload` as one gzip member.
std::string gzip_compress(const std::string& header, const uint8_t* payload, int64_t size,
                          const fs::path& path) {
  z_stream stream{};
  NUMERAL_CHECK(deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, /*windowBits=*/15 + 16,
                             /*memLevel=*/8, Z_DEFAULT_STRATEGY) == Z_OK,
                "{}: cannot initialise gzip compression", path.string());
  std::string out;
  out.reserve(static_cast<size_t>(size / 4 + 1024));
  char buffer[1 << 16];
  auto pump = [&](const uint8_t* data, int64_t n, bool last) {
    int64_t offset = 0;
    while (true) {
      const auto chunk = static_cast<uInt>(std::min<int64_t>(n - offset, 1 << 30));
      stream.next_in = const_cast<Bytef*>(data + offset);
      stream.avail_in = chunk;
      offset += chunk;
      const bool finish = last && offset == n;
      do {
        stream.next_out = reinterpret_cast<Bytef*>(buffer);
        stream.avail_out = sizeof(buffer);
        const int rc = deflate(&stream, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR) {
          deflateEnd(&stream);
          fail("{}: gzip compression failed", path.string());
        }
        out.append(buffer, sizeof(buffer) - stream.avail_out);
      } while (stream.avail_out == 0);
      if (offset >= n) break;
    }
  };
  pump(reinterpret_cast<const uint8_t*>(header.data()), static_cast<int64_t>(header.size()),
       /*last=*/false);
  pump(payload, size, /*last=*/true);
  deflateEnd(&stream);
  return out;
}

}  // namespace

std::vector<int64_t> read_idx_shape(const fs::path& path) {
  IdxInput in(path);
  return read_header(in, path);
}

torch::Tensor read_idx(const fs::path& path) {
  IdxInput in(path);
  const std::vector<int64_t> dims = read_header(in, path);
  int64_t expected = 1;
  for (int64_t d : dims) expected *= d;
  torch::Tensor data = torch::empty(dims, torch::kUInt8);
  const int64_t got = in.read(data.data_ptr<uint8_t>(), expected);
  NUMERAL_CHECK(got == expected, "{}: truncated IDX file: expected {} bytes of {}, found {}{}",
                path.string(), expected, payload_noun(dims.size()), got, in.truncation_note());
  char extra[1 << 16];
  int64_t trailing = 0;
  for (int64_t n; (n = in.read(extra, sizeof(extra))) > 0;) trailing += n;
  NUMERAL_CHECK(!in.truncated_gzip(),
                "{}: truncated gzip file: the stream ends before its checksum trailer",
                path.string());
  NUMERAL_CHECK(trailing == 0,
                "{}: {} trailing bytes after the IDX data (expected exactly {} bytes of {})",
                path.string(), trailing, expected, payload_noun(dims.size()));
  return data;
}

void write_idx(const fs::path& path, const torch::Tensor& data) {
  NUMERAL_CHECK(data.defined(), "write_idx {}: undefined tensor", path.string());
  NUMERAL_CHECK(data.scalar_type() == torch::kUInt8,
                "write_idx {}: expected a uint8 tensor, got {}", path.string(),
                std::string(c10::toString(data.scalar_type())));
  NUMERAL_CHECK(data.dim() >= 1 && data.dim() <= kIdxMaxDims,
                "write_idx {}: expected 1 to {} dimensions, got {}", path.string(), kIdxMaxDims,
                data.dim());
  std::string header;
  put_be32(header, 0x00000800u | static_cast<uint32_t>(data.dim()));
  for (int64_t i = 0; i < data.dim(); ++i) {
    const int64_t dim = data.size(i);
    NUMERAL_CHECK(dim > 0 && dim <= INT32_MAX, "write_idx {}: dimension {} is {}, expected 1 to {}",
                  path.string(), i, dim, INT32_MAX);
    put_be32(header, static_cast<uint32_t>(dim));
  }
  const torch::Tensor bytes = data.to(torch::kCPU).contiguous();
  const auto* payload = bytes.data_ptr<uint8_t>();
  const int64_t size = bytes.numel();
  const std::string name = path.filename().string();
  const bool gz = name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0;
  if (gz) {
    write_file_atomic(path, gzip_compress(header, payload, size, path));
    return;
  }
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(payload), static_cast<std::streamsize>(size));
  });
}

}  // namespace numeral
