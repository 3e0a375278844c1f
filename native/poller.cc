// An epoll set plus an eventfd. On the main thread libuv polls the epoll fd and
// the poller hands JS a batch of ready (token, events) pairs per wake-up; a worker
// thread instead blocks in wait(). Either way, wake() (the eventfd) from any
// thread interrupts it: every blocking wait has a wake path.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>

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
  // out receives up to out.length / 2 pairs per batch. With onReady the poller
  // is driven by this thread's libuv loop; without it, by wait().
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
    epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint32_t>(kWakeToken);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
    if (info[1].IsFunction()) {
      callback_ = Napi::Persistent(info[1].As<Napi::Function>());
      uv_loop_t* loop = nullptr;
      napi_get_uv_event_loop(env, &loop);
      uv_ = new uv_poll_t;
      uv_poll_init(loop, uv_, epfd_);
      uv_->data = this;
      uv_poll_start(uv_, UV_READABLE, OnReadable);
      napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
      Ref();  // the loop holds us while the handle is open
    }
  }

  ~Poller() override {
    StopPolling();
    CloseFds();
  }

 private:
  // Raw N-API here: while a worker thread is being torn down (process.exit in a
  // worker, terminate()) JS can no longer run, every call fails, and the
  // node-addon-api wrappers would turn that failure into a fatal error.
  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Poller*>(handle->data);
    napi_env env = self->Env();
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    int n = self->Collect(0);
    napi_value callback, global, count;
    if (n > 0 && napi_get_reference_value(env, self->callback_, &callback) == napi_ok && callback != nullptr &&
        napi_get_global(env, &global) == napi_ok && napi_create_int32(env, n, &count) == napi_ok) {
      napi_make_callback(env, nullptr, global, callback, 1, &count, nullptr);
    }
    napi_close_handle_scope(env, scope);
  }

  // The environment is going away: stop polling before libuv's loop is closed.
  static void OnEnvCleanup(void* data) { static_cast<Poller*>(data)->StopPolling(); }

  void StopPolling() {
    if (uv_ == nullptr) return;
    uv_poll_stop(uv_);
    uv_close(reinterpret_cast<uv_handle_t*>(uv_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    uv_ = nullptr;
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
    epoll_event ev = {};
    ev.events = info[1].As<Napi::Number>().Uint32Value();
    ev.data.u64 = info[2].As<Napi::Number>().Uint32Value();
    int rc = epoll_ctl(epfd_, op, info[0].As<Napi::Number>().Int32Value(), &ev);
    return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
  }

  // add(fd, events, token) / modify(fd, events, token) -> 0 or -errno.
  // events are poll(2) bits (POLLIN=1, POLLPRI=2, POLLOUT=4), equal to EPOLL*.
  Napi::Value Add(const Napi::CallbackInfo& info) { return Control(info, EPOLL_CTL_ADD); }
  Napi::Value Modify(const Napi::CallbackInfo& info) { return Control(info, EPOLL_CTL_MOD); }

  // remove(fd) -> 0 or -errno.
  Napi::Value Remove(const Napi::CallbackInfo& info) {
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

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (uv_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(uv_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (uv_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(uv_));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (uv_ != nullptr) {
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
  uv_poll_t* uv_ = nullptr;
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
