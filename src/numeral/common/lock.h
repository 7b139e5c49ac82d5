#pragma once
// Advisory locks (flock) that the kernel releases when the process ends, however it ends.
#include <filesystem>
#include <string>

namespace numeral {

// A lock on a directory itself, for files that must be seen together: a multi-file commit takes
// it exclusive, a reader of such files shared. Waits for the lock. On a file system that cannot
// lock, it lets the caller through unlocked.
class DirectoryLock {
 public:
  enum class Mode { kShared, kExclusive };
  DirectoryLock(const std::filesystem::path& dir, Mode mode);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Sole ownership of a directory that one numeral process writes into: a run directory, a
// classifier's or an evaluation's output. Creates the directory if needed and locks
// DIR/.numeral.lock, writing the owner's PID and command line into it. While the owner lives, a
// second RunDirLock on the directory (from any process) throws numeral::Error at once, naming the
// holder's PID.
class RunDirLock {
 public:
  explicit RunDirLock(const std::filesystem::path& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  // The lock file's name inside a locked directory.
  static constexpr const char* kFileName = ".numeral.lock";

 private:
  int fd_ = -1;
};

}  // namespace numeral
