// SIGBUS inside a shared mapping must not kill the process. The peer owns the
// files we map (ring and control files are chowned to the client) and may
// truncate them at any time; the next access beyond the new end of file raises
// SIGBUS, and JS (JIT code included) cannot be unwound from a signal handler.
// So every mapping is registered here, and the handler replaces the whole
// faulting mapping with anonymous zero pages at the same address, marks it
// faulted and counts the fault: the access is retried and succeeds on private
// memory. JS notices the counter change, finds its faulted mapping and drops
// that peer. A SIGBUS outside every registered mapping keeps its default action.
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "busguard.h"
#include "exports.h"

namespace qbipc {
namespace {

struct Slot {
  std::atomic<uintptr_t> base{0};  // 0 free, 1 being filled
  std::atomic<size_t> length{0};
  std::atomic<int32_t> faulted{0};
};

constexpr size_t kSlots = 16384;
Slot slots[kSlots];
// The fault counter JS reads with Atomics.load (an Int32Array over this word).
alignas(8) int32_t faultCount = 0;

Slot* Find(uintptr_t address) {
  for (Slot& s : slots) {
    uintptr_t base = s.base.load(std::memory_order_acquire);
    if (base > 1 && address >= base && address - base < s.length.load(std::memory_order_acquire)) return &s;
  }
  return nullptr;
}

// What SIGBUS did before we installed ours: a fault outside our mappings goes there.
struct sigaction previous;

void OnBus(int signo, siginfo_t* info, void* context) {
  Slot* s = Find(reinterpret_cast<uintptr_t>(info->si_addr));
  if (s == nullptr) {
    if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signo, info, context);  // someone else's handler: theirs to decide
      return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
      previous.sa_handler(signo);
      return;
    }
    // Not ours and nobody else's: the default action (core dump) when the access is retried.
    signal(SIGBUS, SIG_DFL);
    return;
  }
  void* base = reinterpret_cast<void*>(s->base.load(std::memory_order_acquire));
  mmap(base, s->length.load(std::memory_order_acquire), PROT_READ | PROT_WRITE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  s->faulted.store(1, std::memory_order_release);
  __atomic_fetch_add(&faultCount, 1, __ATOMIC_ACQ_REL);
}

void Install() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = OnBus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous);
  });
}

// mappingFaults() -> Int32Array(1) over the process-wide fault counter.
Napi::Value MappingFaults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, &faultCount, sizeof(faultCount), nullptr, nullptr, &buffer) != napi_ok) {
    // Runtimes that refuse external buffers: a copy that never changes (faults then go unnoticed, not fatal).
    return Napi::Int32Array::New(env, 1);
  }
  return Napi::Int32Array::New(env, 1, Napi::ArrayBuffer(env, buffer), 0);
}

// mappingFaulted(view: TypedArray) -> whether the mapping under `view` was replaced after a SIGBUS.
Napi::Value MappingFaulted(const Napi::CallbackInfo& info) {
  void* data = nullptr;
  // The element pointer: napi_get_arraybuffer_info refuses SharedArrayBuffers.
  if (!info[0].IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), info[0], nullptr, nullptr, &data, nullptr, nullptr) != napi_ok || data == nullptr) {
    return Napi::Boolean::New(info.Env(), false);
  }
  Slot* s = Find(reinterpret_cast<uintptr_t>(data));
  return Napi::Boolean::New(info.Env(), s != nullptr && s->faulted.load(std::memory_order_acquire) != 0);
}

}  // namespace

bool GuardMapping(void* base, size_t length) {
  Install();
  for (Slot& s : slots) {
    uintptr_t expected = 0;
    if (s.base.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      s.faulted.store(0, std::memory_order_relaxed);
      s.length.store(length, std::memory_order_release);
      s.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
      return true;
    }
  }
  return false;
}

void UnguardMapping(void* base) {
  for (Slot& s : slots) {
    if (s.base.load(std::memory_order_acquire) == reinterpret_cast<uintptr_t>(base)) {
      s.base.store(0, std::memory_order_release);
      return;
    }
  }
}

void InitBusGuard(Napi::Env env, Napi::Object exports) {
  Install();
  exports.Set("mappingFaults", Napi::Function::New(env, MappingFaults));
  exports.Set("mappingFaulted", Napi::Function::New(env, MappingFaulted));
}

}  // namespace qbipc
