// common/: the file-output policy every writer uses, directory locks and signals. Killed writers
// are real child processes, killed with SIGKILL mid-write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "numeral/common/fields.h"
#include "numeral/common/fs.h"
#include "numeral/common/lock.h"
#include "numeral/common/runtime.h"
#include "numeral/common/signals.h"
#include "test_util.h"

namespace numeral {
namespace {

using namespace test;

// Every name in `dir`, hidden ones included, sorted.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

size_t temporaries_in(const fs::path& dir) {
  const auto names = listing(dir);
  return static_cast<size_t>(std::count_if(names.begin(), names.end(), is_temporary_name));
}

// A child process that runs `body` and then waits to be killed; returns once `body` is done.
class Child {
 public:
  explicit Child(const std::function<void()>& body) {
    int ready[2];
    EXPECT_EQ(::pipe(ready), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      body();
      const char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(3);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char byte = 0;
    EXPECT_EQ(::read(ready[0], &byte, 1), 1) << "the child died before it was ready";
    ::close(ready[0]);
  }
  ~Child() {
    if (pid_ > 0) kill(SIGKILL);
  }
  pid_t pid() const { return pid_; }
  // Sends `signal` and reaps the child; returns the signal that ended it (0 if it exited).
  int kill(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }

 private:
  pid_t pid_ = -1;
};

TEST(FirstDifference, NamesTheFirstFieldThatDiffersOrIsMissing) {
  const nlohmann::json was = {{"channels", {8, 16}}, {"groups", 4}, {"dropout", 0.1}};
  EXPECT_FALSE(first_difference(was, was));
  EXPECT_FALSE(first_difference(was, nlohmann::json::object()));
  nlohmann::json now = was;
  now["groups"] = 8;
  now["dropout"] = 0.2;
  const FieldDifference d = first_difference(was, now);
  EXPECT_EQ(d.field, "dropout");  // nlohmann::json orders keys by name
  EXPECT_EQ(d.was, "0.1");
  EXPECT_EQ(d.now, "0.2");
  now = was;
  now["heads"] = 2;
  const FieldDifference added = first_difference(was, now);
  EXPECT_EQ(added.field, "heads");
  EXPECT_EQ(added.was, "absent");
  EXPECT_EQ(added.now, "2");
}

TEST(FileOutput, WritesWholeFilesAndLeavesNoTemporary) {
  const TempDir dir;
  write_file_atomic(dir / "a.txt", "first");
  write_file_atomic(dir / "a.txt", "second");  // a regular file is replaced
  write_file_atomic(dir / "sub" / "b.txt", [](std::ostream& out) { out << "made"; });
  EXPECT_EQ(read_file(dir / "a.txt"), "second");
  EXPECT_EQ(read_file(dir / "sub" / "b.txt"), "made");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"a.txt", "sub"}));
}

TEST(FileOutput, RefusesFifosSymlinksDevicesAndDirectoriesAndLeavesThemAlone) {
  const TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  write_file_atomic(dir / "target.txt", "keep");
  fs::create_symlink("target.txt", dir / "link");
  fs::create_symlink("nowhere.txt", dir / "dangling");
  fs::create_directory(dir / "sub");

  EXPECT_ERROR(write_file_atomic(dir / "fifo", "x"), "fifo", "is a FIFO (named pipe)",
               "regular files");
  EXPECT_ERROR(write_file_atomic(dir / "link", "x"), "is a symbolic link to target.txt",
               "does not follow");
  EXPECT_ERROR(write_file_atomic(dir / "dangling", "x"), "is a symbolic link to nowhere.txt");
  EXPECT_ERROR(write_file_atomic(dir / "sub", "x"), "is a directory");
  EXPECT_ERROR(check_output_target("/dev/null", "--grid"), "--grid /dev/null",
               "is a character device");

  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dir / "fifo")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dir / "link")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dir / "dangling")));
  EXPECT_FALSE(fs::exists(dir / "nowhere.txt"));
  EXPECT_EQ(read_file(dir / "target.txt"), "keep");
  EXPECT_EQ(temporaries_in(dir.path()), 0u);
}

TEST(FileOutput, AnErrorWhileWritingLeavesTheOldFile) {
  const TempDir dir;
  write_file_atomic(dir / "a.txt", "old");
  EXPECT_THROW(write_file_atomic(dir / "a.txt",
                                 [](std::ostream& out) {
                                   out << "half";
                                   throw std::runtime_error("the writer failed");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read_file(dir / "a.txt"), "old");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"a.txt"}));
}

TEST(FileOutput, WhatAKilledWriterLeftIsRemovedByTheNextWriterThere) {
  const TempDir dir;
  Child child([&] {
    static PendingFile pending(dir / "big.bin");  // still open when the child is killed
    const std::string bytes(1 << 20, 'x');
    EXPECT_EQ(::write(pending.fd(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  });
  EXPECT_EQ(temporaries_in(dir.path()), 1u);
  EXPECT_EQ(child.kill(SIGKILL), SIGKILL);
  EXPECT_EQ(temporaries_in(dir.path()), 1u);  // nothing could clean up after SIGKILL

  // A live writer's temporary, and a fresh unlocked one named after a live process, are kept.
  PendingFile live(dir / "live.bin");
  write_file_atomic(dir / fmt::format(".x.numeral-tmp-{}-0", ::getpid()), "");
  write_file_atomic(dir / "other.txt", "next");  // the first write there in this process
  EXPECT_FALSE(fs::exists(dir / "big.bin"));
  const auto names = listing(dir.path());
  EXPECT_EQ(temporaries_in(dir.path()), 2u);
  EXPECT_TRUE(std::count(names.begin(), names.end(), live.temporary().filename().string()));
  EXPECT_EQ(remove_stale_temporaries(dir.path()), 0);
}

TEST(PendingDir, AppearsWholeWhenCommittedAndNotAtAllOtherwise) {
  const TempDir dir;
  {
    PendingDir pngs(dir / "pngs", /*overwrite=*/false);
    pngs.write("a.png", "1");
    pngs.write("b.png", "2");
    EXPECT_FALSE(fs::exists(dir / "pngs"));
    pngs.commit();
  }
  EXPECT_EQ(listing(dir / "pngs"), (std::vector<std::string>{"a.png", "b.png"}));
  {
    PendingDir abandoned(dir / "other", /*overwrite=*/false);
    abandoned.write("x.png", "1");
  }  // destroyed without a commit, as after an error or an interrupt
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"pngs"}));

  // An earlier export is refused, or replaced whole: nothing of it stays beside the new files.
  EXPECT_ERROR(PendingDir(dir / "pngs", /*overwrite=*/false), "pngs: already holds files",
               "--overwrite");
  {
    PendingDir again(dir / "pngs", /*overwrite=*/true);
    again.write("c.png", "3");
    again.commit();
  }
  EXPECT_EQ(listing(dir / "pngs"), (std::vector<std::string>{"c.png"}));
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"pngs"}));

  // An empty directory is no earlier export; a file or a symlink is no directory.
  fs::create_directory(dir / "empty");
  PendingDir into_empty(dir / "empty/", /*overwrite=*/false);
  into_empty.write("d.png", "4");
  into_empty.commit();
  EXPECT_EQ(listing(dir / "empty"), (std::vector<std::string>{"d.png"}));
  write_file_atomic(dir / "file", "f");
  fs::create_directory_symlink("pngs", dir / "link");
  EXPECT_ERROR(PendingDir(dir / "file", true), "expected a directory");
  EXPECT_ERROR(PendingDir(dir / "link", true), "symbolic link");
}

TEST(RunDirLock, ASecondWriterIsRefusedWithTheHoldersPid) {
  const TempDir dir;
  {
    const RunDirLock first(dir / "run");
    EXPECT_ERROR(RunDirLock second(dir / "run"), "in use by another numeral process",
                 fmt::format("PID {}", ::getpid()));
  }
  { const RunDirLock after_release(dir / "run"); }

  // Another process's lock goes when that process dies, however it dies.
  Child holder([&] { static RunDirLock lock(dir / "run"); });
  EXPECT_ERROR(RunDirLock refused(dir / "run"), fmt::format("PID {}", holder.pid()));
  holder.kill(SIGKILL);
  const RunDirLock taken(dir / "run");
}

TEST(Allocator, KeepsMemoryUnlessToldSystemAndRefusesOtherValues) {
  ::setenv("NUMERAL_MALLOC", "system", 1);
  EXPECT_FALSE(configure_allocator());
  ::setenv("NUMERAL_MALLOC", "jemalloc", 1);
  EXPECT_ERROR(configure_allocator(),
               "NUMERAL_MALLOC=jemalloc: expected keep (the default) or system");
  ::unsetenv("NUMERAL_MALLOC");
  EXPECT_TRUE(configure_allocator());
}

TEST(Signals, InsideAScopeTheFirstSignalIsRecordedAndPolled) {
  for (const auto& [signal, code] : {std::pair{SIGTERM, 143}, std::pair{SIGINT, 130}}) {
    InterruptScope scope;
    EXPECT_FALSE(scope.requested());
    EXPECT_NO_THROW(throw_if_interrupted("a test"));
    ::raise(signal);
    EXPECT_TRUE(scope.requested());
    EXPECT_EQ(scope.signal(), signal);
    try {
      throw_if_interrupted("a test");
      ADD_FAILURE() << "expected Interrupted";
    } catch (const Interrupted& e) {
      EXPECT_EQ(e.signal(), signal);
      EXPECT_EQ(e.exit_code(), code);
      EXPECT_EQ(std::string(e.what()), "interrupted during a test");
    }
  }
  EXPECT_NO_THROW(throw_if_interrupted("after the scopes"));  // the record goes with them
}

TEST(Signals, OutsideAScopeOrTwiceTheProcessEndsWithoutItsTemporaries) {
  const TempDir dir;
  Child unscoped([&] {
    install_signal_handlers();
    static PendingFile pending(dir / "a.bin");
  });
  EXPECT_EQ(unscoped.kill(SIGTERM), SIGTERM);
  Child twice([&] {
    static InterruptScope scope;
    static PendingFile pending(dir / "b.bin");
    ::raise(SIGINT);  // recorded: the child carries on
  });
  EXPECT_EQ(twice.kill(SIGINT), SIGINT);
  EXPECT_TRUE(listing(dir.path()).empty());
}

}  // namespace
}  // namespace numeral
