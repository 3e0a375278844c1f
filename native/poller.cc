// Watches file descriptors for the thread's libuv loop: each fd gets its own
// uv_poll_t in libuv's epoll set, and the poller hands JS one (token, events)
// pair per ready fd. (An epoll set of our own nested in libuv's would make every
// doorbell walk two wake-up chains in the kernel, about 1 us per message, paid
// by the client's send and an extra epoll_wait.) Every wait is libuv's, so
// worker.terminate() and the loop's own wake-ups interrupt it.
#include <poll.h>
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

  // new Poller(out: Int32Array, onReady: () => void): before each call of
  // onReady, out[0] and out[1] hold the ready fd's token and its poll(2) bits.
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    Args args(info, "new Poller(out, onReady)");
    size_t length;
    if (!args.Int32s(0, "out", 2, &pairs_, &length) || !args.Function(1, "onReady")) return;
    out_ = Napi::Persistent(info[0].As<Napi::Int32Array>());  // keeps the array (off-heap at this size) alive
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    receiver_ = Napi::Persistent(env.Global());  // napi_get_global per call costs a Context::Global()
    napi_get_uv_event_loop(env, &loop_);
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
  };

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
    napi_env env = self->Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    self->pairs_[0] = w->token;
    self->pairs_[1] = revents;
    napi_value callback, receiver;
    if (napi_get_reference_value(env, self->callback_, &callback) == napi_ok && callback != nullptr &&
        napi_get_reference_value(env, self->receiver_, &receiver) == napi_ok && receiver != nullptr) {
      // An exception from the callback (or from a nextTick it queued) has no JS caller to reach:
      // hand it to Node's uncaught-exception handling, as any libuv callback of Node's own does.
      if (napi_make_callback(env, nullptr, receiver, callback, 0, nullptr, nullptr) == napi_pending_exception) {
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_handle_scope(env, scope);
  }

  int Watch(int fd, uint32_t events, int32_t token) {
    if (watchers_.count(fd) != 0) return -EEXIST;
    auto* w = new Watcher{{}, this, fd, token};
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

  void StopPolling() {
    if (loop_ == nullptr) return;
    while (!watchers_.empty()) Unwatch(watchers_.begin()->first);
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
  int32_t* pairs_ = nullptr;   // out_'s elements
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
