#include "numeral/common/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "numeral/common/error.h"
#include "numeral/common/lock.h"
#include "numeral/common/signals.h"

namespace numeral {
namespace {

constexpr const char* kTemporaryMarker = ".numeral-tmp-";
// A temporary whose lock is free is stale when its process is gone, or when it is this old (the
// PID was reused).
constexpr std::time_t kStaleAfterSeconds = 3600;

std::string errno_text() {
  return std::strerror(errno);
}

fs::path parent_or_dot(const fs::path& path) {
  const fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// A fresh name beside `target`: ".<name>.numeral-tmp-<pid>-<nonce>".
fs::path temporary_beside(const fs::path& target) {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t nonce = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    nonce = rng();
  }
  std::string name = target.filename().string();
  if (name.size() > 160) name.resize(160);  // the whole name stays under NAME_MAX (255)
  return target.parent_path() /
         fmt::format(".{}{}{}-{:016x}", name, kTemporaryMarker, ::getpid(), nonce);
}

// The PID in a temporary's name, or 0 for any other name.
pid_t temporary_owner(const std::string& filename) {
  if (filename.empty() || filename[0] != '.') return 0;
  const auto at = filename.rfind(kTemporaryMarker);
  if (at == std::string::npos) return 0;
  const char* digits = filename.c_str() + at + std::strlen(kTemporaryMarker);
  char* end = nullptr;
  errno = 0;
  const long pid = std::strtol(digits, &end, 10);
  if (end == digits || *end != '-' || errno != 0 || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

bool process_alive(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// "a FIFO (named pipe)" and the like for what lstat found, or "" for a regular file.
std::string non_regular_kind(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

void create_parent(const fs::path& path) {
  const fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  NUMERAL_CHECK(!ec, "cannot create directory {}: {}", parent.string(), ec.message());
}

// remove_stale_temporaries(dir), once per directory and process.
void remove_stale_temporaries_once(const fs::path& dir) {
  static std::mutex mutex;
  static std::set<std::string> visited;
  std::error_code ec;
  const fs::path key = fs::absolute(dir, ec).lexically_normal();
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!visited.insert(key.string()).second) return;
  }
  remove_stale_temporaries(dir);
}

void write_all(int fd, const char* data, size_t size, const fs::path& target) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    NUMERAL_CHECK(n > 0, "cannot write {}: {}", target.string(),
                  n < 0 ? errno_text() : "write returned 0");
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// Number of entries in a directory, stopping at 2 (all the callers need).
int entries_in(const fs::path& dir) {
  int n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end && n < 2; it.increment(ec)) ++n;
  return n;
}

}  // namespace

void check_output_target(const fs::path& path, const std::string& label) {
  NUMERAL_CHECK(!path.empty(), "{}empty output path", label.empty() ? "" : label + ": ");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    NUMERAL_CHECK(errno == ENOENT || errno == ENOTDIR, "cannot write {}: {}", path.string(),
                  errno_text());
    return;
  }
  const std::string kind = non_regular_kind(st);
  if (kind.empty()) return;
  std::string why;
  if (S_ISDIR(st.st_mode)) {
    why = "is a directory; expected a file name";
  } else if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const fs::path to = fs::read_symlink(path, ec);
    why = fmt::format(
        "is a symbolic link{}; numeral does not follow symbolic links, name the file itself",
        ec ? "" : " to " + to.string());
  } else {
    why = fmt::format("is {}; numeral writes only regular files", kind);
  }
  if (label.empty()) fail("cannot write {}: it {}", path.string(), why);
  fail("{} {}: {}", label, path.string(), why);
}

PendingFile::PendingFile(fs::path target) : target_(std::move(target)) {
  check_output_target(target_);
  create_parent(target_);
  remove_stale_temporaries_once(parent_or_dot(target_));
  temporary_ = temporary_beside(target_);
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  NUMERAL_CHECK(fd_ >= 0, "cannot write {}: {}", target_.string(), errno_text());
  ::flock(fd_, LOCK_EX);  // tells remove_stale_temporaries that a live process owns it
  slot_ = register_temporary(temporary_);
}

PendingFile::~PendingFile() {
  if (!published_) ::unlink(temporary_.c_str());
  unregister_temporary(slot_);
  if (fd_ >= 0) ::close(fd_);
}

void PendingFile::sync() {
  NUMERAL_CHECK(::fsync(fd_) == 0, "cannot write {}: fsync failed: {}", target_.string(),
                errno_text());
}

void PendingFile::publish() {
  NUMERAL_CHECK(!published_, "{}: published twice", target_.string());
  check_output_target(target_);
  NUMERAL_CHECK(::rename(temporary_.c_str(), target_.c_str()) == 0,
                "cannot write {}: rename failed: {}", target_.string(), errno_text());
  published_ = true;
  unregister_temporary(slot_);
  slot_ = -1;
  ::close(fd_);
  fd_ = -1;
  fsync_directory(parent_or_dot(target_));
}

void PendingFile::commit() {
  sync();
  publish();
}

PendingDir::PendingDir(fs::path target, bool overwrite)
    : target_(std::move(target)), overwrite_(overwrite) {
  if (!target_.empty() && target_.filename().empty()) target_ = target_.parent_path();  // "dir/"
  NUMERAL_CHECK(!target_.empty(), "empty output directory name");
  struct stat st {};
  if (::lstat(target_.c_str(), &st) == 0) {
    NUMERAL_CHECK(!S_ISLNK(st.st_mode),
                  "{}: is a symbolic link; numeral does not follow symbolic links, name the "
                  "directory itself",
                  target_.string());
    NUMERAL_CHECK(S_ISDIR(st.st_mode), "{}: is {}, expected a directory", target_.string(),
                  non_regular_kind(st).empty() ? "a file" : non_regular_kind(st));
    NUMERAL_CHECK(overwrite_ || entries_in(target_) == 0,
                  "{}: already holds files (an earlier export?); replace the whole directory "
                  "with --overwrite, or choose another",
                  target_.string());
  } else {
    NUMERAL_CHECK(errno == ENOENT, "cannot write {}: {}", target_.string(), errno_text());
  }
  create_parent(target_);
  remove_stale_temporaries_once(parent_or_dot(target_));
  staging_ = temporary_beside(target_);
  NUMERAL_CHECK(::mkdir(staging_.c_str(), 0777) == 0, "cannot write {}: {}", target_.string(),
                errno_text());
  fd_ = ::open(staging_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ >= 0) ::flock(fd_, LOCK_EX);
}

PendingDir::~PendingDir() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(staging_, ignored);
  }
  if (fd_ >= 0) ::close(fd_);
}

void PendingDir::write(const std::string& name, const std::string& bytes) {
  const fs::path relative(name);
  bool inside = !committed_ && !name.empty() && relative.is_relative() && name.back() != '/';
  for (const auto& part : relative) inside = inside && part != ".." && part != "." && !part.empty();
  NUMERAL_CHECK(inside, "{}: cannot add '{}'", target_.string(), name);
  const fs::path path = staging_ / relative;
  if (relative.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    NUMERAL_CHECK(!ec, "cannot write {}: {}", (target_ / name).string(), ec.message());
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  NUMERAL_CHECK(fd >= 0, "cannot write {}: {}", (target_ / name).string(), errno_text());
  try {
    write_all(fd, bytes.data(), bytes.size(), target_ / name);
  } catch (...) {
    ::close(fd);
    throw;
  }
  NUMERAL_CHECK(::close(fd) == 0, "cannot write {}: {}", (target_ / name).string(), errno_text());
}

void PendingDir::commit() {
  NUMERAL_CHECK(!committed_, "{}: committed twice", target_.string());
  NUMERAL_CHECK(fd_ < 0 || ::syncfs(fd_) == 0, "cannot write {}: sync failed: {}", target_.string(),
                errno_text());
  const fs::path parent = parent_or_dot(target_);
  fs::path replaced;  // the old directory, to delete once the new one is in place
  {
    DirectoryLock lock(parent, DirectoryLock::Mode::kExclusive);
    struct stat st {};
    const bool exists = ::lstat(target_.c_str(), &st) == 0;
    NUMERAL_CHECK(!exists || (S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)),
                  "{}: became {} while this export ran", target_.string(),
                  exists ? non_regular_kind(st) : "");
    if (!exists || entries_in(target_) == 0) {
      // rename(2) replaces an empty directory atomically.
      NUMERAL_CHECK(::rename(staging_.c_str(), target_.c_str()) == 0,
                    "cannot write {}: rename failed: {}", target_.string(), errno_text());
    } else {
      NUMERAL_CHECK(overwrite_,
                    "{}: another export wrote files there while this one ran; nothing was "
                    "replaced",
                    target_.string());
      if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) ==
          0) {
        replaced = staging_;  // the exchange left the old directory under the staging name
      } else {
        // No atomic exchange on this file system: move the old directory aside first.
        NUMERAL_CHECK(errno == EINVAL || errno == ENOSYS, "cannot replace {}: {}", target_.string(),
                      errno_text());
        replaced = temporary_beside(target_);
        NUMERAL_CHECK(::rename(target_.c_str(), replaced.c_str()) == 0, "cannot replace {}: {}",
                      target_.string(), errno_text());
        NUMERAL_CHECK(::rename(staging_.c_str(), target_.c_str()) == 0,
                      "cannot write {}: rename failed: {} (the old files are in {})",
                      target_.string(), errno_text(), replaced.string());
      }
    }
    committed_ = true;
    fsync_directory(parent);
  }
  if (!replaced.empty()) {
    std::error_code ignored;
    fs::remove_all(replaced, ignored);
  }
}

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  PendingFile file(path);
  {
    std::ofstream out(file.temporary(), std::ios::binary | std::ios::trunc);
    NUMERAL_CHECK(out.good(), "cannot write {}: {}", path.string(), errno_text());
    write(out);
    out.flush();
    NUMERAL_CHECK(out.good(), "cannot write {}: write failed (disk full?)", path.string());
  }
  file.commit();
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  PendingFile file(path);
  write_all(file.fd(), bytes.data(), bytes.size(), path);
  file.commit();
}

bool is_temporary_name(const std::string& filename) {
  return temporary_owner(filename) != 0;
}

int remove_stale_temporaries(const fs::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    const pid_t owner = temporary_owner(path.filename().string());
    if (owner == 0) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st {};
    const bool unlocked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    const bool old = ::fstat(fd, &st) == 0 && std::time(nullptr) - st.st_mtime > kStaleAfterSeconds;
    if (unlocked && (!process_alive(owner) || old)) {
      std::error_code removal;
      fs::remove_all(path, removal);
      if (!removal) ++removed;
    }
    ::close(fd);
  }
  return removed;
}

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL); the rename itself has happened.
  NUMERAL_CHECK(rc == 0 || error == EINVAL || error == EROFS, "cannot sync directory {}: {}",
                dir.string(), std::strerror(error));
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
