#include "numeral/common/signals.h"

#include <fmt/format.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace numeral {
namespace {

constexpr int kHandledSignals[] = {SIGINT, SIGTERM};

// The registry of temporaries, readable from a signal handler: fixed slots, no allocation.
struct TemporarySlot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 live
  char path[PATH_MAX];
};
constexpr int kTemporarySlots = 64;
TemporarySlot g_temporaries[kTemporarySlots];

std::atomic<int> g_scope_depth{0};
std::atomic<bool> g_requested{false};
std::atomic<int> g_signal{0};
std::atomic<bool> g_installed{false};

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

void remove_registered_temporaries() noexcept {
  for (auto& slot : g_temporaries) {
    if (slot.state.load() == 2) ::unlink(slot.path);
  }
}

extern "C" void on_signal(int signal) {
  if (g_scope_depth.load() > 0 && !g_requested.load()) {
    g_signal.store(signal);
    g_requested.store(true);
    return;
  }
  // Outside a scope, or a second signal: end now, as the signal would, without leaving files.
  remove_registered_temporaries();
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(signal, &action, nullptr);
  ::raise(signal);  // delivered when the handler returns
}

}  // namespace

void install_signal_handlers() {
  if (g_installed.exchange(true)) return;
  for (int signal : kHandledSignals) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(signal, &action, nullptr);
  }
}

Interrupted::Interrupted(int signal, const std::string& message)
    : Error(message), signal_(signal) {}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return fmt::format("signal {}", signal);
  }
}

InterruptScope::InterruptScope() {
  install_signal_handlers();
  if (g_scope_depth.fetch_add(1) == 0) {
    g_requested.store(false);
    g_signal.store(0);
  }
}

InterruptScope::~InterruptScope() {
  if (g_scope_depth.fetch_sub(1) == 1) {
    g_requested.store(false);
    g_signal.store(0);
  }
}

const std::atomic<bool>& InterruptScope::flag() const {
  return g_requested;
}

int InterruptScope::signal() const {
  return g_signal.load();
}

void throw_if_interrupted(const char* what) {
  if (g_requested.load()) {
    throw Interrupted(g_signal.load(), fmt::format("interrupted during {}", what));
  }
}

int register_temporary(const std::filesystem::path& path) {
  const std::string& native = path.native();
  if (native.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kTemporarySlots; ++i) {
    int expected = 0;
    if (g_temporaries[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_temporaries[i].path, native.c_str(), native.size() + 1);
      g_temporaries[i].state.store(2);
      return i;
    }
  }
  return -1;
}

void unregister_temporary(int slot) {
  if (slot >= 0 && slot < kTemporarySlots) g_temporaries[slot].state.store(0);
}

}  // namespace numeral
