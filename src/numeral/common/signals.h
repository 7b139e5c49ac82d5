#pragma once
// SIGINT and SIGTERM, process-wide. Outside an InterruptScope a signal removes numeral's temporary
// files and ends the process as the signal would. Inside one, the first signal only records itself:
// long loops poll it at a safe point (training checkpoints and stops; every sampler step throws
// Interrupted, whose exit code is 128 + the signal). A second signal ends the process at once,
// again removing the temporary files first.
#include <atomic>
#include <filesystem>
#include <string>

#include "numeral/common/error.h"

namespace numeral {

// Installs the handlers (idempotent; main calls it first, InterruptScope makes sure). They replace
// an inherited "ignore" too: `numeral train ... &` in a script still stops cleanly on `kill -INT`.
void install_signal_handlers();

// A command stopped by a signal: what it did about it, and the exit code 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& message);
  int signal() const { return signal_; }
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

// "SIGINT", "SIGTERM", or "signal N".
std::string signal_name(int signal);

// While one is alive, the first SIGINT or SIGTERM is recorded instead of ending the process.
// Scopes nest; the record lasts until the outermost one closes.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  // True once a signal arrived; for loops that stop on their own (the trainer).
  const std::atomic<bool>& flag() const;
  bool requested() const { return flag().load(); }
  // The signal that arrived, or 0.
  int signal() const;
};

// Throws Interrupted("interrupted during <what>") when a signal arrived inside an InterruptScope:
// the poll point of long loops. Cheap (one atomic load).
void throw_if_interrupted(const char* what);

// Temporary files and directories a signal must not leave behind. register_temporary returns a
// slot (-1 when all are taken: the next numeral process writing there removes the leftover) that
// unregister_temporary frees. The handler unlinks registered files; directories are left to that
// next process.
int register_temporary(const std::filesystem::path& path);
void unregister_temporary(int slot);

}  // namespace numeral
