// Shared (not process-private) futex wait/wake on words of a SharedArrayBuffer,
// which is what glibc's process-shared semaphores in libqb's rings use.
// V8's Atomics.wait/notify cannot do this: they never reach the kernel futex.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>

#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

int32_t* WordAt(const Napi::CallbackInfo& info) {
  Napi::Int32Array words = info[0].As<Napi::Int32Array>();
  uint32_t index = info[1].As<Napi::Number>().Uint32Value();
  if (index >= words.ElementLength()) return nullptr;
  return words.Data() + index;
}

// wordAddress(words: Int32Array, index) -> the word's address, for futexWakeAt.
// Hot paths wake by address: unwrapping a typed array costs more than the syscall.
Napi::Value WordAddress(const Napi::CallbackInfo& info) {
  int32_t* word = WordAt(info);
  if (word == nullptr) return ThrowType(info.Env(), "wordAddress: index out of range");
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(word)));
}

// futexWakeAt(address, count) -> woken or -errno. FUTEX_WAKE never touches the
// memory: a stale or wrong address is EFAULT or a spurious wake-up, never a write.
Napi::Value FutexWakeAt(const Napi::CallbackInfo& info) {
  auto* word = reinterpret_cast<int32_t*>(static_cast<uintptr_t>(info[0].As<Napi::Number>().Int64Value()));
  long rc = syscall(SYS_futex, word, FUTEX_WAKE, info[1].As<Napi::Number>().Int32Value(), nullptr, nullptr, 0);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : static_cast<double>(rc));
}

// futexWait(words, index, expected, timeoutMs) -> 0 woken, -EAGAIN (value
// differed), -ETIMEDOUT or -EINTR. Blocks the calling thread: use only off the
// event loop, and only where something will post or wake it.
Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  int32_t* word = WordAt(info);
  if (word == nullptr) return ThrowType(info.Env(), "futexWait: index out of range");
  int32_t expected = info[2].As<Napi::Number>().Int32Value();
  double ms = info[3].As<Napi::Number>().DoubleValue();
  timespec ts;
  timespec* timeout = nullptr;
  if (ms >= 0) {
    ts.tv_sec = static_cast<time_t>(ms / 1000);
    ts.tv_nsec = static_cast<long>((ms - ts.tv_sec * 1000.0) * 1e6);
    timeout = &ts;
  }
  long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports.Set("wordAddress", Napi::Function::New(env, WordAddress));
  exports.Set("futexWakeAt", Napi::Function::New(env, FutexWakeAt));
  exports.Set("futexWait", Napi::Function::New(env, FutexWait));
}

}  // namespace qbipc
