// SIGBUS inside a shared mapping must not kill the process. The peer owns the
// files we map (ring and control files are chowned to the client) and may
// truncate them at any time; the next access beyond the new end of file raises
// SIGBUS, and JS (JIT code included) cannot be unwound from a signal handler.
// So every mapping is registered here, and the handler replaces the whole
// faulting mapping with anonymous zero pages at the same address, marks it
// faulted and counts the fault: the access is retried and succeeds on private
// memory. JS notices the counter change, finds its faulted mapping and drops
// that peer. A SIGBUS outside every registered mapping keeps its default action.
//
// The registry has no fixed capacity: slots live in blocks chained with atomic
// pointers and never freed, so the handler walks them without a lock or an
// allocation. Writers (registration, release, unregistration) hold a mutex and
// change a slot under a sequence count (odd while changing): the handler skips
// a slot it saw change, which is never the faulting one (a mapping in use is
// registered and stays so until V8 collects its last buffer).
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include "args.h"
#include "busguard.h"
#include "exports.h"

namespace qbipc {

enum SlotState : int32_t { kLive = 0, kFaulted = 1, kReleased = 2 };

struct GuardSlot {
  std::atomic<uint32_t> sequence{0};  // odd while a writer changes the fields below
  std::atomic<uintptr_t> base{0};     // 0: free
  std::atomic<size_t> length{0};
  std::atomic<int32_t> state{kLive};
  // Writers only, under the lock. The range released with this mapping: the reservation
  // it shares with the other files mapped in the same call (all released in one call).
  GuardSlot* nextFree = nullptr;
  uintptr_t groupBase = 0;
  size_t groupLength = 0;
};

namespace {

constexpr size_t kBlockSlots = 4096;

struct Block {
  GuardSlot slots[kBlockSlots];
  std::atomic<Block*> next{nullptr};
};

Block firstBlock;  // most processes never need a second one

// Writers' state, under `lock`. The handler reads only the blocks. No JS value is
// made while it is held: that may collect a buffer, whose finalizer takes it.
std::mutex lock;
Block* tailBlock = &firstBlock;
size_t tailUsed = 0;
GuardSlot* freeSlots = nullptr;
size_t liveMappings = 0;      // registered and not released
size_t liveLimit = SIZE_MAX;  // lowered by tests only
// For JS's lookups (faulted? release), never read by the handler. Never destroyed:
// V8 may still free buffers (and so call UnguardMapping) on other threads at exit.
std::map<uintptr_t, GuardSlot*>& byBase = *new std::map<uintptr_t, GuardSlot*>();

// The fault counter JS reads with Atomics.load (an Int32Array over this word).
alignas(8) int32_t faultCount = 0;

void Write(GuardSlot* s, uintptr_t base, size_t length, int32_t state) {
  uint32_t seq = s->sequence.load(std::memory_order_relaxed);
  s->sequence.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s->base.store(base, std::memory_order_relaxed);
  s->length.store(length, std::memory_order_relaxed);
  s->state.store(state, std::memory_order_relaxed);
  s->sequence.store(seq + 2, std::memory_order_release);
}

// Async-signal-safe: atomic loads only.
GuardSlot* FindForHandler(uintptr_t address, uintptr_t* base, size_t* length) {
  for (Block* b = &firstBlock; b != nullptr; b = b->next.load(std::memory_order_acquire)) {
    for (GuardSlot& s : b->slots) {
      uint32_t seq = s.sequence.load(std::memory_order_acquire);
      if ((seq & 1) != 0) continue;
      uintptr_t from = s.base.load(std::memory_order_relaxed);
      size_t size = s.length.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.sequence.load(std::memory_order_relaxed) != seq) continue;
      if (from != 0 && address >= from && address - from < size) {
        *base = from;
        *length = size;
        return &s;
      }
    }
  }
  return nullptr;
}

// Under the lock: the registered mapping containing `address`.
GuardSlot* FindLocked(uintptr_t address) {
  auto it = byBase.upper_bound(address);
  if (it == byBase.begin()) return nullptr;
  --it;
  GuardSlot* s = it->second;
  return address - it->first < s->length.load(std::memory_order_relaxed) ? s : nullptr;
}

// What SIGBUS did before we installed ours: a fault outside our mappings goes there.
struct sigaction previous;

void OnBus(int signo, siginfo_t* info, void* context) {
  uintptr_t base = 0;
  size_t length = 0;
  GuardSlot* s = FindForHandler(reinterpret_cast<uintptr_t>(info->si_addr), &base, &length);
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
  // Released: already private zero pages (a fault that raced the release); the retry succeeds.
  if (s->state.load(std::memory_order_acquire) == kReleased) return;
  mmap(reinterpret_cast<void*>(base), length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  s->state.store(kFaulted, std::memory_order_release);
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
  Args args(info, "mappingFaulted(view)");
  uint8_t* data;
  size_t length;
  if (!args.Bytes(0, "view", &data, &length)) return args.Thrown();
  bool faulted;
  {
    std::lock_guard<std::mutex> guard(lock);
    GuardSlot* s = FindLocked(reinterpret_cast<uintptr_t>(data));
    faulted = s != nullptr && s->state.load(std::memory_order_acquire) == kFaulted;
  }
  return Napi::Boolean::New(info.Env(), faulted);
}

// guardedMappings() -> how many mappings are registered and not released.
Napi::Value GuardedMappings(const Napi::CallbackInfo& info) {
  size_t live;
  {
    std::lock_guard<std::mutex> guard(lock);
    live = liveMappings;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(live));
}

// limitGuardedMappings(limit?) -> undefined. For tests of the refusal path:
// registrations beyond `limit` live mappings fail; no argument removes the limit.
Napi::Value LimitGuardedMappings(const Napi::CallbackInfo& info) {
  Args args(info, "limitGuardedMappings(limit?)");
  size_t limit = SIZE_MAX;
  if (!args.Omitted(0) && !args.Size(0, "limit", 0, &limit)) return args.Thrown();
  {
    std::lock_guard<std::mutex> guard(lock);
    liveLimit = limit;
  }
  return info.Env().Undefined();
}

}  // namespace

GuardSlot* GuardMapping(void* base, size_t length, void* groupBase, size_t groupLength) {
  Install();
  std::lock_guard<std::mutex> guard(lock);
  if (liveMappings >= liveLimit) return nullptr;
  GuardSlot* s = freeSlots;
  if (s != nullptr) {
    freeSlots = s->nextFree;
  } else {
    if (tailUsed == kBlockSlots) {
      auto* block = new (std::nothrow) Block();
      if (block == nullptr) return nullptr;
      tailBlock->next.store(block, std::memory_order_release);  // the handler may walk into it from now on
      tailBlock = block;
      tailUsed = 0;
    }
    s = &tailBlock->slots[tailUsed++];
  }
  byBase[reinterpret_cast<uintptr_t>(base)] = s;
  s->groupBase = reinterpret_cast<uintptr_t>(groupBase);
  s->groupLength = groupLength;
  Write(s, reinterpret_cast<uintptr_t>(base), length, kLive);
  liveMappings++;
  return s;
}

int ReleaseMapping(void* address) {
  std::lock_guard<std::mutex> guard(lock);
  GuardSlot* s = FindLocked(reinterpret_cast<uintptr_t>(address));
  if (s == nullptr) return -ENOENT;
  if (s->state.load(std::memory_order_acquire) == kReleased) return -ENOENT;
  // Replaced in place: the range stays reserved for the buffers, and stays registered until it is
  // unmapped, so a fault racing this call on another thread still finds it (and finds it released).
  // One call for the whole group, instead of one per file.
  const uintptr_t from = s->groupBase;
  const size_t length = s->groupLength;
  if (mmap(reinterpret_cast<void*>(from), length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
    return -errno;
  }
  for (auto it = byBase.lower_bound(from); it != byBase.end() && it->first - from < length; ++it) {
    if (it->second->state.load(std::memory_order_relaxed) == kReleased) continue;
    it->second->state.store(kReleased, std::memory_order_release);
    liveMappings--;
  }
  return 0;
}

void UnguardMapping(GuardSlot* s) {
  std::lock_guard<std::mutex> guard(lock);
  byBase.erase(s->base.load(std::memory_order_relaxed));
  if (s->state.load(std::memory_order_relaxed) != kReleased) liveMappings--;
  Write(s, 0, 0, kLive);
  s->nextFree = freeSlots;
  freeSlots = s;
}

void InitBusGuard(Napi::Env env, Napi::Object exports) {
  Install();
  exports.Set("mappingFaults", Napi::Function::New(env, MappingFaults));
  exports.Set("mappingFaulted", Napi::Function::New(env, MappingFaulted));
  exports.Set("guardedMappings", Napi::Function::New(env, GuardedMappings));
  exports.Set("limitGuardedMappings", Napi::Function::New(env, LimitGuardedMappings));
}

}  // namespace qbipc
