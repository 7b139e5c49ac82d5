#include "numeral/common/fs.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "numeral/common/error.h"

namespace numeral {
namespace {

fs::path temporary_sibling(const fs::path& path) {
  static std::mt19937_64 rng{std::random_device{}()};
  return path.parent_path() /
         fmt::format(".{}.{}.{:x}.tmp", path.filename().string(), ::getpid(), rng());
}

void create_parent(const fs::path& path) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  NUMERAL_CHECK(!ec, "cannot create directory {}: {}", parent.string(), ec.message());
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  NUMERAL_CHECK(!path.empty(), "write_file_atomic: empty output path");
  NUMERAL_CHECK(!fs::is_directory(path), "cannot write {}: it is a directory", path.string());
  create_parent(path);
  const fs::path tmp = temporary_sibling(path);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      NUMERAL_CHECK(out.good(), "cannot write {}: {}", path.string(), std::strerror(errno));
      write(out);
      out.flush();
      NUMERAL_CHECK(out.good(), "cannot write {}: write failed (disk full?)", path.string());
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    NUMERAL_CHECK(!ec, "cannot write {}: rename failed: {}", path.string(), ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

std::string read_file(const fs::path& path) {
  NUMERAL_CHECK(fs::exists(path), "{}: no such file", path.string());
  NUMERAL_CHECK(!fs::is_directory(path), "{}: is a directory, expected a file", path.string());
  std::ifstream in(path, std::ios::binary);
  NUMERAL_CHECK(in.good(), "{}: cannot open: {}", path.string(), std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  NUMERAL_CHECK(!ec && fs::is_directory(dir), "cannot create directory {}: {}", dir.string(),
                ec ? ec.message() : "not a directory");
  NUMERAL_CHECK(::access(dir.c_str(), W_OK) == 0, "directory {} is not writable", dir.string());
}

}  // namespace numeral
