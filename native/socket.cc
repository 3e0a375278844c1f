// Unix stream sockets for the service and its setup connections: listen, accept,
// credentials (SCM_CREDENTIALS), non-blocking send/recv. No protocol knowledge.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "args.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

// libqb addresses abstract sockets with the full 110-byte sockaddr_un: a NUL,
// the name (at most 106 bytes) and NUL padding. Filesystem sockets use the path
// with addrlen 2 + strlen.
bool FillAddress(const std::string& name, bool abstract, sockaddr_un* addr, socklen_t* len) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (abstract) {
    size_t n = name.size() < sizeof(addr->sun_path) - 2 ? name.size() : sizeof(addr->sun_path) - 2;
    memcpy(addr->sun_path + 1, name.data(), n);
    *len = sizeof(*addr);
    return true;
  }
  if (name.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, name.data(), name.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  return true;
}

// listenStream(name, abstract) -> fd. Throws on failure.
Napi::Value ListenStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "listenStream(name, abstract)");
  std::string name;
  bool abstract;
  if (!args.String(0, "name", &name) || !args.Bool(1, "abstract", &abstract)) return args.Thrown();
  sockaddr_un addr;
  socklen_t len;
  if (!FillAddress(name, abstract, &addr, &len)) return ThrowErrno(env, ENAMETOOLONG, "bind", name);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket", name);
  if (!abstract) unlink(name.c_str());  // a stale socket file from a crashed server
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "bind", abstract ? "@" + name : name);
  }
  if (!abstract) chmod(name.c_str(), 0777);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
  if (listen(fd, 128) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "listen", name);
  }
  return Napi::Number::New(env, fd);
}

// connectStream(name, abstract) -> fd or -errno. Non-blocking connect, as libqb's client.
Napi::Value ConnectStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "connectStream(name, abstract)");
  std::string name;
  bool abstract;
  if (!args.String(0, "name", &name) || !args.Bool(1, "abstract", &abstract)) return args.Thrown();
  sockaddr_un addr;
  socklen_t len;
  if (!FillAddress(name, abstract, &addr, &len)) return Napi::Number::New(env, -ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int err = errno;
    close(fd);
    return Napi::Number::New(env, -err);
  }
  return Napi::Number::New(env, fd);
}

// acceptStream(listenFd) -> fd or -errno (-EAGAIN when nobody waits).
Napi::Value AcceptStream(const Napi::CallbackInfo& info) {
  Args args(info, "acceptStream(listenFd)");
  int listenFd;
  if (!args.Fd(0, "listenFd", &listenFd)) return args.Thrown();
  int fd = accept4(listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return Napi::Number::New(info.Env(), -errno);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
  return Napi::Number::New(info.Env(), fd);
}

// setPassCred(fd, on) -> 0 or -errno.
Napi::Value SetPassCred(const Napi::CallbackInfo& info) {
  Args args(info, "setPassCred(fd, on)");
  int fd;
  bool enable;
  if (!args.Fd(0, "fd", &fd) || !args.Bool(1, "on", &enable)) return args.Thrown();
  int on = enable ? 1 : 0;
  int rc = setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

// recvCredentials(fd, into: Uint8Array, creds: Int32Array[4]) -> bytes, 0 at EOF, or -errno.
// creds receives {pid, uid, gid, present} from the first SCM_CREDENTIALS message.
Napi::Value RecvCredentials(const Napi::CallbackInfo& info) {
  Args args(info, "recvCredentials(fd, into, creds)");
  int fd;
  uint8_t* into;
  size_t length, credsLength;
  int32_t* out;
  if (!args.Fd(0, "fd", &fd) || !args.Bytes(1, "into", &into, &length) || !args.Int32s(2, "creds", 4, &out, &credsLength)) {
    return args.Thrown();
  }
  iovec iov = {into, length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_CMSG_CLOEXEC);
  if (n < 0) return Napi::Number::New(info.Env(), -errno);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      memcpy(&cred, CMSG_DATA(c), sizeof(cred));
      out[0] = cred.pid;
      out[1] = static_cast<int32_t>(cred.uid);
      out[2] = static_cast<int32_t>(cred.gid);
      out[3] = 1;
      break;
    }
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// send(fd, data: Uint8Array) -> bytes or -errno. Never blocks, never raises SIGPIPE.
Napi::Value Send(const Napi::CallbackInfo& info) {
  Args args(info, "send(fd, data)");
  int fd;
  uint8_t* data;
  size_t length;
  if (!args.Fd(0, "fd", &fd) || !args.Bytes(1, "data", &data, &length)) return args.Thrown();
  ssize_t n = send(fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

// recv(fd, into: Uint8Array) -> bytes, 0 at EOF, or -errno. Never blocks.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Args args(info, "recv(fd, into)");
  int fd;
  uint8_t* into;
  size_t length;
  if (!args.Fd(0, "fd", &fd) || !args.Bytes(1, "into", &into, &length)) return args.Thrown();
  ssize_t n = recv(fd, into, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

// shutdown(fd) -> 0 or -errno: both directions, so the peer sees EOF/HUP at once.
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Args args(info, "shutdown(fd)");
  int fd;
  if (!args.Fd(0, "fd", &fd)) return args.Thrown();
  int rc = shutdown(fd, SHUT_RDWR);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

// close(fd) -> 0 or -errno.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Args args(info, "close(fd)");
  int fd;
  if (!args.Fd(0, "fd", &fd)) return args.Thrown();
  int rc = close(fd);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("listenStream", Napi::Function::New(env, ListenStream));
  exports.Set("connectStream", Napi::Function::New(env, ConnectStream));
  exports.Set("acceptStream", Napi::Function::New(env, AcceptStream));
  exports.Set("setPassCred", Napi::Function::New(env, SetPassCred));
  exports.Set("recvCredentials", Napi::Function::New(env, RecvCredentials));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("recv", Napi::Function::New(env, Recv));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown));
  exports.Set("close", Napi::Function::New(env, Close));
}

}  // namespace qbipc
