// Waiting for a glibc process-shared semaphore to hold a token, off the JS
// thread. A poster (a libqb server, or glibc's sem_post) only calls FUTEX_WAKE
// when the semaphore's waiter count (high half of its 64-bit word) is non-zero,
// so the waiter registers there exactly as glibc's sem_wait does, sleeps on the
// low half with FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME (no private flag), and
// deregisters. The token itself is taken afterwards, by the caller, with a CAS.
//
// SemWaiter owns one thread, so a long wait never occupies libuv's thread pool;
// results come back through a thread-safe function. cancel() interrupts a wait.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "args.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

constexpr uint64_t kOneWaiter = uint64_t{1} << 32;

// 0 when the semaphore holds a token, -ETIMEDOUT, or -ECANCELED.
int WaitForToken(uint64_t* data, double timeoutMs, const std::atomic<bool>* cancel) {
  uint32_t* value = reinterpret_cast<uint32_t*>(data);  // little-endian: the low half
  if (__atomic_load_n(value, __ATOMIC_ACQUIRE) > 0) return 0;
  timespec deadline;
  timespec* abs = nullptr;
  if (timeoutMs >= 0) {
    clock_gettime(CLOCK_REALTIME, &deadline);
    long long ns = static_cast<long long>(timeoutMs * 1e6) + deadline.tv_nsec;
    deadline.tv_sec += static_cast<time_t>(ns / 1000000000LL);
    deadline.tv_nsec = static_cast<long>(ns % 1000000000LL);
    abs = &deadline;
  }
  __atomic_fetch_add(data, kOneWaiter, __ATOMIC_ACQ_REL);
  int result;
  for (;;) {
    uint64_t d = __atomic_load_n(data, __ATOMIC_ACQUIRE);
    if (static_cast<uint32_t>(d) > 0) {
      result = 0;
      break;
    }
    if (cancel != nullptr && cancel->load(std::memory_order_acquire)) {
      result = -ECANCELED;
      break;
    }
    long rc = syscall(SYS_futex, value, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0, abs, nullptr, FUTEX_BITSET_MATCH_ANY);
    if (rc < 0 && errno == ETIMEDOUT) {
      result = -ETIMEDOUT;
      break;
    }
  }
  __atomic_fetch_sub(data, kOneWaiter, __ATOMIC_ACQ_REL);
  return result;
}

// The semaphore's 64-bit word at words[index] (8-aligned), and the wait's timeout.
bool SemaphoreArgs(const Args& args, uint64_t** semaphore, double* timeoutMs) {
  int32_t* words;
  size_t length;
  uint32_t index;
  if (!args.Int32s(0, "words", 2, &words, &length) || !args.Uint32(1, "index", UINT32_MAX, &index) ||
      !args.Number(2, "timeoutMs", timeoutMs)) {
    return false;
  }
  int32_t* word = words + index;
  if (index + 1 >= length || reinterpret_cast<uintptr_t>(word) % 8 != 0) {
    return args.RangeError(args.At(1), "index", "the index of an 8-aligned 64-bit word inside words");
  }
  *semaphore = reinterpret_cast<uint64_t*>(word);
  return true;
}

class SemWaiter : public Napi::ObjectWrap<SemWaiter> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SemWaiter",
                       {
                           InstanceMethod<&SemWaiter::Wait>("wait"),
                           InstanceMethod<&SemWaiter::Cancel>("cancel"),
                           InstanceMethod<&SemWaiter::Close>("close"),
                       });
  }

  // new SemWaiter(onResult: (result: number) => void)
  explicit SemWaiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SemWaiter>(info) {
    Napi::Env env = info.Env();
    if (!Args(info, "new SemWaiter(onResult)").Function(0, "onResult")) {
      stopped_ = true;  // no thread, no function: nothing for the destructor to stop
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "qbipc-semwait", 0, 1);
    tsfn_.Unref(env);  // only a wait in progress keeps the event loop alive
    thread_ = std::thread([this] { Run(); });
  }

  ~SemWaiter() override { Stop(); }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return job_ || stopping_; });
      if (stopping_) return;
      job_ = false;
      uint64_t* data = data_;
      double timeout = timeoutMs_;
      lock.unlock();
      int result = WaitForToken(data, timeout, &cancel_);
      tsfn_.NonBlockingCall([this, result](Napi::Env env, Napi::Function fn) {
        held_.Reset();
        busy_ = false;
        if (!stopped_) tsfn_.Unref(env);
        fn.Call({Napi::Number::New(env, result)});
      });
      lock.lock();
    }
  }

  // wait(words: Int32Array, index, timeoutMs) -> 0 started, -EBUSY if a wait is
  // in progress. The semaphore's 64-bit word starts at words[index] (8-aligned).
  // timeoutMs < 0 waits until a token or cancel(). onResult gets 0, -ETIMEDOUT
  // or -ECANCELED.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args args(info, "SemWaiter.wait(words, index, timeoutMs)");
    uint64_t* data;
    double timeoutMs;
    if (!SemaphoreArgs(args, &data, &timeoutMs)) return args.Thrown();
    if (stopped_) return Napi::Number::New(env, -EBADF);
    if (busy_) return Napi::Number::New(env, -EBUSY);
    busy_ = true;
    held_ = Napi::Persistent(info[0].As<Napi::Object>());  // keeps the mapping alive while the thread reads it
    tsfn_.Ref(env);
    {
      std::lock_guard<std::mutex> guard(mutex_);
      data_ = data;
      timeoutMs_ = timeoutMs;
      cancel_.store(false, std::memory_order_release);
      job_ = true;
    }
    wake_.notify_one();
    return Napi::Number::New(env, 0);
  }

  // cancel(): the wait in progress (if any) ends with -ECANCELED.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Interrupt();
    return info.Env().Undefined();
  }

  void Interrupt() {
    if (!busy_) return;
    cancel_.store(true, std::memory_order_release);
    // A shared (not private) wake: the waiter sleeps on a shared futex.
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(data_), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  }

  // close(): ends the thread; a wait in progress ends without a callback.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stopping_ = true;
    }
    Interrupt();
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    tsfn_.Abort();
    held_.Reset();
  }

  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool job_ = false;
  bool stopping_ = false;
  uint64_t* data_ = nullptr;
  double timeoutMs_ = -1;
  std::atomic<bool> cancel_{false};
  // JS-thread state.
  bool busy_ = false;
  bool stopped_ = false;
  Napi::ObjectReference held_;
};

// semWait(words, index, timeoutMs) -> 0 (a token is there), -ETIMEDOUT. Blocks
// the calling thread: for worker threads that choose to block.
Napi::Value SemWait(const Napi::CallbackInfo& info) {
  Args args(info, "semWait(words, index, timeoutMs)");
  uint64_t* data;
  double timeoutMs;
  if (!SemaphoreArgs(args, &data, &timeoutMs)) return args.Thrown();
  return Napi::Number::New(info.Env(), WaitForToken(data, timeoutMs, nullptr));
}

}  // namespace

void InitSemWait(Napi::Env env, Napi::Object exports) {
  exports.Set("SemWaiter", SemWaiter::Define(env));
  exports.Set("semWait", Napi::Function::New(env, SemWait));
}

}  // namespace qbipc
