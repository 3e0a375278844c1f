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

#include "args.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

// words[index] of an Int32Array, index checked against its length.
bool WordAt(const Args& args, int32_t** word) {
  int32_t* words;
  size_t length;
  uint32_t index;
  if (!args.Int32s(0, "words", 1, &words, &length) || !args.Uint32(1, "index", UINT32_MAX, &index)) return false;
  if (index >= length) return args.RangeError(args.At(1), "index", "an index below words.length");
  *word = words + index;
  return true;
}

// wordAddress(words: Int32Array, index) -> the word's address, for futexWakeAt.
// Hot paths wake by address: unwrapping a typed array costs more than the syscall.
Napi::Value WordAddress(const Napi::CallbackInfo& info) {
  Args args(info, "wordAddress(words, index)");
  int32_t* word;
  if (!WordAt(args, &word)) return args.Thrown();
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(word)));
}

// futexWakeAt(address, count) -> woken or -errno. FUTEX_WAKE never touches the
// memory: a stale or wrong address is EFAULT or a spurious wake-up, never a write.
Napi::Value FutexWakeAt(const Napi::CallbackInfo& info) {
  Args args(info, "futexWakeAt(address, count)");
  size_t address;
  uint32_t count;
  if (!args.Size(0, "address", 0, &address) || !args.Uint32(1, "count", INT32_MAX, &count)) return args.Thrown();
  auto* word = reinterpret_cast<int32_t*>(static_cast<uintptr_t>(address));
  long rc = syscall(SYS_futex, word, FUTEX_WAKE, static_cast<int>(count), nullptr, nullptr, 0);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : static_cast<double>(rc));
}

// futexWait(words, index, expected, timeoutMs) -> 0 woken, -EAGAIN (value
// differed), -ETIMEDOUT or -EINTR. Blocks the calling thread: use only off the
// event loop, and only where something will post or wake it. timeoutMs < 0: no timeout.
Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Args args(info, "futexWait(words, index, expected, timeoutMs)");
  int32_t* word;
  int32_t expected;
  double ms;
  if (!WordAt(args, &word) || !args.Int32(2, "expected", &expected) || !args.Number(3, "timeoutMs", &ms)) return args.Thrown();
  timespec ts;
  timespec* timeout = nullptr;
  if (ms >= 0 && ms < 1e15) {
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
