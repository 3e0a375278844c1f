// An epoll set plus an eventfd. Driven by a thread's libuv loop, each watched fd
// gets its own uv_poll_t in libuv's epoll set and the poller hands JS one
// (token, events) pair per ready fd: an epoll set nested in libuv's would make
// every doorbell walk two wake-up chains in the kernel (about 1 us per message,
// paid by the client's send and our extra epoll_wait). Without a loop, a thread
// blocks in wait() on the epoll set. Either way, wake() (the eventfd) from any
// thread interrupts it.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <unordered_map>

#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

constexpr int32_t kWakeToken = -1;  // the eventfd's token in the output pairs
constexpr int kMaxBatch = 1024;

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {
                           InstanceMethod<&Poller::Add>("add"),
                           InstanceMethod<&Poller::Modify>("modify"),
                           InstanceMethod<&Poller::Remove>("remove"),
                           InstanceMethod<&Poller::Wait>("wait"),
                           InstanceMethod<&Poller::Wake>("wake"),
                           InstanceMethod<&Poller::RefLoop>("ref"),
                           InstanceMethod<&Poller::UnrefLoop>("unref"),
                           InstanceMethod<&Poller::Close>("close"),
                           InstanceAccessor<&Poller::EventFd>("eventFd"),
                       });
  }

  // new Poller(out: Int32Array, onReady?: (count) => void)
  // With onReady the poller is driven by this thread's libuv loop and out
  // receives one pair per call; without it, by wait(), up to out.length / 2.
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      ThrowType(env, "new Poller(out: Int32Array, onReady?: function)");
      return;
    }
    out_ = Napi::Persistent(info[0].As<Napi::Int32Array>());
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      ThrowErrno(env, errno, "epoll_create1", "");
      return;
    }
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (evfd_ < 0) {
      ThrowErrno(env, errno, "eventfd", "");
      return;
    }
    if (info[1].IsFunction()) {
      callback_ = Napi::Persistent(info[1].As<Napi::Function>());
      napi_get_uv_event_loop(env, &loop_);
      pairs_ = out_.Value().Data();  // out_ keeps the array (off-heap at this size) alive
      napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
      Ref();  // the loop holds us until close()
      Watch(evfd_, POLLIN, kWakeToken);
    } else {
      epoll_event ev = {};
      ev.events = EPOLLIN;
      ev.data.u64 = static_cast<uint32_t>(kWakeToken);
      epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
    }
  }

  ~Poller() override {
    StopPolling();
    CloseFds();
  }

 private:
  // One uv_poll_t per watched fd (loop mode).
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
    if (w->token == kWakeToken) self->DrainEventFd();
    napi_env env = self->Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    self->pairs_[0] = w->token;
    self->pairs_[1] = revents;
    napi_value callback, global, count;
    if (napi_get_reference_value(env, self->callback_, &callback) == napi_ok && callback != nullptr &&
        napi_get_global(env, &global) == napi_ok && napi_create_int32(env, 1, &count) == napi_ok) {
      napi_make_callback(env, nullptr, global, callback, 1, &count, nullptr);
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

  void DrainEventFd() {
    uint64_t count;
    while (read(evfd_, &count, sizeof(count)) > 0) {
    }
  }

  // The environment is going away: stop polling before libuv's loop is closed.
  static void OnEnvCleanup(void* data) { static_cast<Poller*>(data)->StopPolling(); }

  void StopPolling() {
    if (loop_ == nullptr) return;
    while (!watchers_.empty()) Unwatch(watchers_.begin()->first);
    loop_ = nullptr;
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
  }

  // epoll_wait into the output pairs; the eventfd is drained and reported once.
  int Collect(int timeoutMs) {
    Napi::Int32Array out = out_.Value();
    int capacity = static_cast<int>(out.ElementLength() / 2);
    if (capacity > kMaxBatch) capacity = kMaxBatch;
    epoll_event evs[kMaxBatch];
    int n = epoll_wait(epfd_, evs, capacity, timeoutMs);
    if (n < 0) return -errno;
    int32_t* pairs = out.Data();
    for (int i = 0; i < n; i++) {
      int32_t token = static_cast<int32_t>(static_cast<uint32_t>(evs[i].data.u64));
      if (token == kWakeToken) {
        uint64_t count;
        while (read(evfd_, &count, sizeof(count)) > 0) {
        }
      }
      pairs[2 * i] = token;
      pairs[2 * i + 1] = static_cast<int32_t>(evs[i].events);
    }
    return n;
  }

  Napi::Value Control(const Napi::CallbackInfo& info, int op) {
    int fd = info[0].As<Napi::Number>().Int32Value();
    uint32_t events = info[1].As<Napi::Number>().Uint32Value();
    uint32_t token = info[2].As<Napi::Number>().Uint32Value();
    if (loop_ != nullptr) {
      if (op == EPOLL_CTL_ADD) return Napi::Number::New(info.Env(), Watch(fd, events, static_cast<int32_t>(token)));
      auto it = watchers_.find(fd);
      if (it == watchers_.end()) return Napi::Number::New(info.Env(), -ENOENT);
      it->second->token = static_cast<int32_t>(token);
      return Napi::Number::New(info.Env(), uv_poll_start(&it->second->handle, UvEvents(events), OnPoll));
    }
    epoll_event ev = {};
    ev.events = events;
    ev.data.u64 = token;
    int rc = epoll_ctl(epfd_, op, fd, &ev);
    return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
  }

  // add(fd, events, token) / modify(fd, events, token) -> 0 or -errno.
  // events are poll(2) bits (POLLIN=1, POLLPRI=2, POLLOUT=4), equal to EPOLL*.
  Napi::Value Add(const Napi::CallbackInfo& info) { return Control(info, EPOLL_CTL_ADD); }
  Napi::Value Modify(const Napi::CallbackInfo& info) { return Control(info, EPOLL_CTL_MOD); }

  // remove(fd) -> 0 or -errno.
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    if (loop_ != nullptr) return Napi::Number::New(info.Env(), Unwatch(info[0].As<Napi::Number>().Int32Value()));
    int rc = epoll_ctl(epfd_, EPOLL_CTL_DEL, info[0].As<Napi::Number>().Int32Value(), nullptr);
    return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
  }

  // wait(timeoutMs) -> pairs written, 0 on timeout, or -errno. Blocks this thread.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), Collect(info[0].As<Napi::Number>().Int32Value()));
  }

  Napi::Value Wake(const Napi::CallbackInfo& info) {
    uint64_t one = 1;
    ssize_t rc = write(evfd_, &one, sizeof(one));
    return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
  }

  Napi::Value EventFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), evfd_); }

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
      Unref();
    }
    CloseFds();
    return info.Env().Undefined();
  }

  void CloseFds() {
    if (epfd_ >= 0) close(epfd_);
    if (evfd_ >= 0) close(evfd_);
    epfd_ = evfd_ = -1;
  }

  int epfd_ = -1;
  int evfd_ = -1;
  uv_loop_t* loop_ = nullptr;  // set while a libuv loop drives the poller
  int32_t* pairs_ = nullptr;   // out_'s elements, in loop mode
  bool ref_ = true;
  std::unordered_map<int, Watcher*> watchers_;
  Napi::FunctionReference callback_;
  Napi::Reference<Napi::Int32Array> out_;
};

// wakeEventFd(fd) -> 0 or -errno: wakes a poller from another thread, which
// holds only the number of the poller's eventfd.
Napi::Value WakeEventFd(const Napi::CallbackInfo& info) {
  uint64_t one = 1;
  ssize_t rc = write(info[0].As<Napi::Number>().Int32Value(), &one, sizeof(one));
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("Poller", Poller::Define(env));
  exports.Set("wakeEventFd", Napi::Function::New(env, WakeEventFd));
}

}  // namespace qbipc
