#pragma once
// numeral's file-output policy, the one way every writer puts files on disk:
//  - A file is written to a temporary sibling, fsync'd, renamed over its target, and the directory
//    fsync'd: the target is always the old file or the whole new one, even after a power cut.
//  - An existing target that is not a regular file is refused: a directory, a FIFO, a device, a
//    socket, and a symbolic link, which numeral never follows.
//  - Temporaries are named ".<target>.numeral-tmp-<pid>-<nonce>" and locked (flock) while written.
//    They are removed on every error path and on SIGINT/SIGTERM; those a killed process left are
//    removed by the next numeral process that writes into the same directory.
//  - A multi-file output (a folder of PNGs) is staged in a temporary directory and renamed into
//    place whole.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace numeral {

namespace fs = std::filesystem;

// Throws numeral::Error unless `path` is absent or a regular file. A symbolic link is refused, not
// followed. `label` (e.g. "--grid") starts the message when given.
void check_output_target(const fs::path& path, const std::string& label = "");

// A file being written: a locked temporary beside `target`, renamed over it by publish(). Creates
// missing parent directories and removes stale temporaries there first. Destroyed unpublished (an
// error, an interrupt), it removes the temporary and leaves `target` untouched.
class PendingFile {
 public:
  explicit PendingFile(fs::path target);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  const fs::path& target() const { return target_; }
  const fs::path& temporary() const { return temporary_; }
  // The temporary's descriptor, open for writing.
  int fd() const { return fd_; }
  // Flushes the temporary's data to the disk (fsync).
  void sync();
  // Checks the target again, renames the temporary over it and fsyncs the directory.
  void publish();
  // sync() then publish().
  void commit();

 private:
  fs::path target_, temporary_;
  int fd_ = -1;
  int slot_ = -1;  // in the signal handler's registry
  bool published_ = false;
};

// A directory of files staged beside `target` and renamed into place whole by commit(). An existing
// non-empty `target` is refused unless `overwrite`, and then replaced whole, with everything in it.
// Destroyed uncommitted, it removes the staging directory.
class PendingDir {
 public:
  PendingDir(fs::path target, bool overwrite);
  ~PendingDir();
  PendingDir(const PendingDir&) = delete;
  PendingDir& operator=(const PendingDir&) = delete;

  const fs::path& target() const { return target_; }
  // Writes one file into the staging directory (synced once, by commit()); `name` may name
  // subfolders ("train/3/0.png"), never a way out of it.
  void write(const std::string& name, const std::string& bytes);
  // Syncs the files, puts the directory in place of `target` and fsyncs its parent.
  void commit();

 private:
  fs::path target_, staging_;
  bool overwrite_;
  int fd_ = -1;  // the staging directory, locked while it is filled
  bool committed_ = false;
};

// Writes `path` through a PendingFile: `write` fills the temporary, which is committed only if
// `write` returns normally. Throws numeral::Error naming the path.
void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write);

// Same as write_file_atomic for an in-memory byte buffer.
void write_file_atomic(const fs::path& path, const std::string& bytes);

// Removes the temporaries that numeral processes no longer alive left in `dir` (none of them holds
// its lock) and returns how many. PendingFile and PendingDir call it once per directory.
int remove_stale_temporaries(const fs::path& dir);

// Whether a file name is one of numeral's temporaries.
bool is_temporary_name(const std::string& filename);

// fsyncs a directory, so that renames and removals in it survive a power cut.
void fsync_directory(const fs::path& dir);

// Reads a whole file; throws numeral::Error naming the path if it is missing or unreadable.
std::string read_file(const fs::path& path);

// Throws numeral::Error unless `dir` exists (or can be created) and a file can be written in it.
void ensure_writable_dir(const fs::path& dir);

}  // namespace numeral
