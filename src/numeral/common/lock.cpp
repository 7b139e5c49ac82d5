#include "numeral/common/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "numeral/common/error.h"

namespace numeral {
namespace {

// Whether flock's failure means "this file system cannot lock" rather than "someone holds it".
bool cannot_lock_here(int error) {
  return error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS;
}

// This process's command line, arguments separated by spaces.
std::string own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string line = bytes.str();
  while (!line.empty() && line.back() == '\0') line.pop_back();
  std::replace(line.begin(), line.end(), '\0', ' ');
  return line;
}

// "PID 1234: numeral train ..." from a lock file's contents.
std::string describe_holder(int fd) {
  char buffer[512] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string text(buffer, n > 0 ? static_cast<size_t>(n) : 0);
  const auto newline = text.find('\n');
  const std::string pid = text.substr(0, newline);
  std::string command = newline == std::string::npos ? "" : text.substr(newline + 1);
  while (!command.empty() && command.back() == '\n') command.pop_back();
  if (pid.empty()) return "PID unknown";
  return command.empty() ? fmt::format("PID {}", pid) : fmt::format("PID {}: {}", pid, command);
}

}  // namespace

DirectoryLock::DirectoryLock(const std::filesystem::path& dir, Mode mode) {
  const std::filesystem::path path = dir.empty() ? "." : dir;
  fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  NUMERAL_CHECK(fd_ >= 0, "cannot open directory {}: {}", path.string(), std::strerror(errno));
  const int operation = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
  while (::flock(fd_, operation) != 0) {
    if (errno == EINTR) continue;
    const int error = errno;
    if (cannot_lock_here(error)) break;
    ::close(fd_);
    fd_ = -1;
    fail("cannot lock directory {}: {}", path.string(), std::strerror(error));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

RunDirLock::RunDirLock(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  NUMERAL_CHECK(!ec && std::filesystem::is_directory(dir), "cannot create directory {}: {}",
                dir.string(), ec ? ec.message() : "a file is in the way");
  const std::filesystem::path path = dir / kFileName;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  NUMERAL_CHECK(fd_ >= 0, "cannot lock {}: cannot open {}: {}", dir.string(), path.string(),
                std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (cannot_lock_here(error)) return;  // nothing to enforce it with; carry on unlocked
    const std::string holder = describe_holder(fd_);
    ::close(fd_);
    fd_ = -1;
    NUMERAL_CHECK(error != EWOULDBLOCK,
                  "{} is in use by another numeral process ({}); wait for it to end or choose "
                  "another directory",
                  dir.string(), holder);
    fail("cannot lock {}: {}", dir.string(), std::strerror(error));
  }
  const std::string owner = fmt::format("{}\n{}\n", ::getpid(), own_command_line());
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t written = ::pwrite(fd_, owner.data(), owner.size(), 0);
    (void)written;  // the owner's description is a courtesy; the lock is what counts
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace numeral
