// Watches file descriptors for the thread's libuv loop: each fd gets its own
// uv_poll_t in libuv's epoll set. (An epoll set of our own nested in libuv's
// would make every doorbell walk two wake-up chains in the kernel, about 1 us
// per message, paid by the client's send and an extra epoll_wait.) Every
// blocking wait is libuv's, so worker.terminate() and the loop's own wake-ups
// interrupt it.
//
// The fds a loop turn finds ready are handed to JS as one batch, in one call,
// from a check handle (right after libuv's poll phase). While traffic flows the
// poller then keeps the thread: it looks at libuv's epoll set itself
// (epoll_wait with timeout 0 on uv_backend_fd) and hands JS the next batch
// without a loop turn, until the set holds nothing of ours, holds anything not
// ours (libuv's own work: a message, a handler's I/O — level-triggered, libuv
// sees it again), libuv has work due (uv_backend_timeout: an immediate, a
// timer), or a bounded number of batches ran. Looks that find nothing cost a
// syscall each, so the poller stops looking after a few misses in a row and
// tries again now and then. JS may ask to be called again even when a look finds
// no fd (it writes kCallAgain over out[0]: it is polling something the poller
// does not watch, src/ring-spin.ts); the same limits apply, and whatever libuv
// has to do still comes first. While it does, the poller looks at the epoll set
// only every few calls: each call served requests already, and a look costs a
// syscall per pass.
#include <poll.h>
#include <sys/epoll.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <unordered_map>

#include "args.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {
                           InstanceMethod<&Poller::Add>("add"),
                           InstanceMethod<&Poller::Modify>("modify"),
                           InstanceMethod<&Poller::Remove>("remove"),
                           InstanceMethod<&Poller::RefLoop>("ref"),
                           InstanceMethod<&Poller::UnrefLoop>("unref"),
                           InstanceMethod<&Poller::Close>("close"),
                       });
  }

  // new Poller(out: Int32Array, onReady: () => void, keepThread: boolean): before
  // each call of onReady, out[0] holds the batch's length n and out[1 + 2i],
  // out[2 + 2i] the i-th ready fd's token and poll(2) bits (i < n, n >= 1).
  // out's length bounds the batch: (length - 1) / 2 pairs (n may be 0 when JS
  // asked to be called again). keepThread: look for the next batch in libuv's
  // epoll set before returning to the loop.
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    Args args(info, "new Poller(out, onReady, keepThread)");
    size_t length;
    bool keepThread;
    if (!args.Int32s(0, "out", 3, &out_words_, &length) || !args.Function(1, "onReady") || !args.Bool(2, "keepThread", &keepThread)) return;
    capacity_ = (length - 1) / 2;
    keep_thread_ = keepThread;
    out_ = Napi::Persistent(info[0].As<Napi::Int32Array>());  // keeps the array alive (its memory is not moved)
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    receiver_ = Napi::Persistent(env.Global());  // napi_get_global per call costs a Context::Global()
    napi_get_uv_event_loop(env, &loop_);
    // The check handle delivers each turn's batch; it never keeps the loop alive by itself.
    check_ = new uv_check_t;
    check_->data = this;
    uv_check_init(loop_, check_);
    uv_check_start(check_, OnCheck);
    uv_unref(reinterpret_cast<uv_handle_t*>(check_));
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    Ref();  // the loop holds us until close()
  }

  ~Poller() override { StopPolling(); }

 private:
  // One uv_poll_t per watched fd.
  struct Watcher {
    uv_poll_t handle;
    Poller* poller;
    int fd;
    int32_t token;
    uint32_t events;  // poll(2) bits asked for
  };

  // Batches handed to JS per check callback, at most, before libuv runs again.
  static constexpr int kMaxBatchesPerTurn = 64;
  // Looks at the epoll set that found nothing in a row before the poller stops looking,
  // and, while stopped, turns between trial looks.
  static constexpr int kMissesAllowed = 4;
  static constexpr int kRetryEvery = 64;
  // What onReady leaves in out[0] to be called again at once (with keepThread).
  static constexpr int32_t kCallAgain = -1;
  // While JS asks again: one look at the epoll set per this many calls (libuv's own
  // work and our sockets wait at most that many passes; timers are checked at each).
  static constexpr unsigned kCallsPerLookWhileAgain = 8;
  enum class Look { kNothing, kOurs, kLibuv };

  // poll(2) bits -> uv_poll events. libuv polls level-triggered only; UV_DISCONNECT
  // is always asked for so that a hang-up is seen even while POLLIN is not watched.
  static int UvEvents(uint32_t events) {
    int uv = UV_DISCONNECT;
    if (events & POLLIN) uv |= UV_READABLE;
    if (events & POLLPRI) uv |= UV_PRIORITIZED;
    if (events & POLLOUT) uv |= UV_WRITABLE;
    return uv;
  }

  // Raw N-API here: while a worker thread is being torn down (process.exit in a
  // worker, terminate()) JS can no longer run, every call fails, and the
  // node-addon-api wrappers would turn that failure into a fatal error.
  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* w = reinterpret_cast<Watcher*>(handle);
    Poller* self = w->poller;
    int32_t revents = 0;
    if (status < 0 || (events & UV_DISCONNECT)) {
      // libuv folds HUP/ERR into readable/disconnect (and stops the handle on
      // ERR): ask the kernel for the exact poll(2) bits.
      pollfd p = {w->fd, POLLIN | POLLPRI | POLLOUT, 0};
      if (poll(&p, 1, 0) > 0) revents = p.revents & (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP | POLLNVAL);
    } else {
      if (events & UV_READABLE) revents |= POLLIN;
      if (events & UV_PRIORITIZED) revents |= POLLPRI;
      if (events & UV_WRITABLE) revents |= POLLOUT;
    }
    if (revents == 0) return;
    self->Append(w->token, revents);
  }

  void Append(int32_t token, int32_t revents) {
    if (pending_ == capacity_) Deliver();  // a full batch goes now
    if (loop_ == nullptr) return;
    out_words_[1 + 2 * pending_] = token;
    out_words_[2 + 2 * pending_] = revents;
    pending_++;
  }

  // Hands JS the batch collected so far, in one call (an empty one only when JS asked again).
  void Deliver(bool evenEmpty = false) {
    if ((pending_ == 0 && !evenEmpty) || loop_ == nullptr) return;
    out_words_[0] = static_cast<int32_t>(pending_);
    pending_ = 0;
    napi_env env = Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value callback, receiver;
    if (napi_get_reference_value(env, callback_, &callback) == napi_ok && callback != nullptr &&
        napi_get_reference_value(env, receiver_, &receiver) == napi_ok && receiver != nullptr) {
      // An exception from the callback (or from a nextTick it queued) has no JS caller to reach:
      // hand it to Node's uncaught-exception handling, as any libuv callback of Node's own does.
      if (napi_make_callback(env, nullptr, receiver, callback, 0, nullptr, nullptr) == napi_pending_exception) {
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_handle_scope(env, scope);
  }

  static void OnCheck(uv_check_t* check) {
    auto* self = static_cast<Poller*>(check->data);
    if (self == nullptr || self->pending_ == 0) return;
    self->ServeWhileBusy();
  }

  // Delivers this turn's batch, then the next ones found in libuv's epoll set (see the top).
  void ServeWhileBusy() {
    uint64_t started = 0;
    bool again = false;
    for (int batch = 0;; batch++) {
      Deliver(again);
      if (loop_ == nullptr || !keep_thread_ || batch + 1 >= kMaxBatchesPerTurn) return;
      again = out_words_[0] == kCallAgain;
      if (!again && !LookNow()) return;
      int timeout = uv_backend_timeout(loop_);
      if (timeout == 0) return;  // libuv has work now (an immediate, a closing handle, a request done)
      if (timeout > 0) {
        uint64_t now = uv_hrtime();
        if (started == 0) started = now;
        else if ((now - started) / 1000000 >= static_cast<uint64_t>(timeout)) return;  // a timer is due
      }
      Look found = Look::kNothing;
      if (!again || ++calls_again_ % kCallsPerLookWhileAgain == 0) found = CollectReady();
      if (found == Look::kLibuv || (found == Look::kNothing && !again)) return;
    }
  }

  // Whether to look at the epoll set now (misses in a row stop the looking for a while).
  bool LookNow() {
    if (credit_ > 0) return true;
    if (++idle_turns_ < kRetryEvery) return false;
    idle_turns_ = 0;
    credit_ = 1;
    return true;
  }

  // One look at libuv's epoll set: kOurs when it held ready fds of ours and nothing else
  // (they are then the pending batch).
  Look CollectReady() {
    epoll_event events[64];
    int n = epoll_wait(uv_backend_fd(loop_), events, 64, 0);
    if (n <= 0) {
      if (credit_ > 0) credit_--;
      return Look::kNothing;
    }
    for (int i = 0; i < n; i++) {
      auto it = watchers_.find(events[i].data.fd);
      if (it == watchers_.end()) {
        pending_ = 0;  // libuv's own work: hand the thread back; our fds are still ready after it
        return Look::kLibuv;
      }
      // EPOLL{IN,PRI,OUT,ERR,HUP} are the poll(2) bits. A watch changed in this batch reaches
      // the kernel at libuv's next turn: what is no longer asked for is left out.
      const Watcher* w = it->second;
      int32_t revents =
          static_cast<int32_t>(events[i].events & (w->events | POLLERR | POLLHUP) & (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP));
      if (revents != 0) Append(w->token, revents);
    }
    if (pending_ == 0) return Look::kNothing;
    credit_ = kMissesAllowed;
    return Look::kOurs;
  }

  int Watch(int fd, uint32_t events, int32_t token) {
    if (watchers_.count(fd) != 0) return -EEXIST;
    auto* w = new Watcher{{}, this, fd, token, events};
    int rc = uv_poll_init(loop_, &w->handle, fd);
    if (rc != 0) {
      delete w;
      return rc;  // libuv errors are -errno on Linux
    }
    rc = uv_poll_start(&w->handle, UvEvents(events), OnPoll);
    if (rc != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), FreeWatcher);
      return rc;
    }
    if (!ref_) uv_unref(reinterpret_cast<uv_handle_t*>(&w->handle));
    watchers_[fd] = w;
    return 0;
  }

  static void FreeWatcher(uv_handle_t* h) { delete reinterpret_cast<Watcher*>(h); }

  int Unwatch(int fd) {
    auto it = watchers_.find(fd);
    if (it == watchers_.end()) return -ENOENT;
    uv_close(reinterpret_cast<uv_handle_t*>(&it->second->handle), FreeWatcher);
    watchers_.erase(it);
    return 0;
  }

  // The environment is going away: stop polling before libuv's loop is closed.
  static void OnEnvCleanup(void* data) { static_cast<Poller*>(data)->StopPolling(); }

  static void FreeCheck(uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); }

  void StopPolling() {
    if (loop_ == nullptr) return;
    while (!watchers_.empty()) Unwatch(watchers_.begin()->first);
    check_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(check_), FreeCheck);
    check_ = nullptr;
    pending_ = 0;
    loop_ = nullptr;
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
  }

  // add(fd, events, token) -> 0 or -errno; modify likewise (token and events).
  // events are poll(2) bits (POLLIN=1, POLLPRI=2, POLLOUT=4).
  static bool WatchArgs(const Args& args, int* fd, uint32_t* events, int32_t* token) {
    return args.Fd(0, "fd", fd) && args.Uint32(1, "events", 0xffff, events) && args.Int32(2, "token", token);
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Args args(info, "Poller.add(fd, events, token)");
    int fd;
    uint32_t events;
    int32_t token;
    if (!WatchArgs(args, &fd, &events, &token)) return args.Thrown();
    if (loop_ == nullptr) return Napi::Number::New(info.Env(), -EBADF);
    return Napi::Number::New(info.Env(), Watch(fd, events, token));
  }

  Napi::Value Modify(const Napi::CallbackInfo& info) {
    Args args(info, "Poller.modify(fd, events, token)");
    int fd;
    uint32_t events;
    int32_t token;
    if (!WatchArgs(args, &fd, &events, &token)) return args.Thrown();
    auto it = watchers_.find(fd);
    if (it == watchers_.end()) return Napi::Number::New(info.Env(), -ENOENT);
    it->second->token = token;
    it->second->events = events;
    return Napi::Number::New(info.Env(), uv_poll_start(&it->second->handle, UvEvents(events), OnPoll));
  }

  // remove(fd) -> 0 or -errno.
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    Args args(info, "Poller.remove(fd)");
    int fd;
    if (!args.Fd(0, "fd", &fd)) return args.Thrown();
    return Napi::Number::New(info.Env(), Unwatch(fd));
  }

  void SetRef(bool ref) {
    ref_ = ref;
    for (auto& entry : watchers_) {
      auto* h = reinterpret_cast<uv_handle_t*>(&entry.second->handle);
      if (ref) uv_ref(h);
      else uv_unref(h);
    }
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    SetRef(true);
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    SetRef(false);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (loop_ != nullptr) {
      StopPolling();
      callback_.Reset();
      receiver_.Reset();
      Unref();
    }
    return info.Env().Undefined();
  }

  uv_loop_t* loop_ = nullptr;  // the thread's libuv loop, until close()
  uv_check_t* check_ = nullptr;
  int32_t* out_words_ = nullptr;  // out_'s elements: [n, token, revents, token, revents, …]
  size_t capacity_ = 0;           // pairs out_ holds
  size_t pending_ = 0;            // pairs collected, not yet delivered
  bool keep_thread_ = false;
  int credit_ = kMissesAllowed;
  int idle_turns_ = 0;
  unsigned calls_again_ = 0;  // calls made because JS asked again (counts towards the next look)
  bool ref_ = true;
  std::unordered_map<int, Watcher*> watchers_;
  Napi::FunctionReference callback_;
  Napi::ObjectReference receiver_;
  Napi::Reference<Napi::Int32Array> out_;
};

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("Poller", Poller::Define(env));
}

}  // namespace qbipc
