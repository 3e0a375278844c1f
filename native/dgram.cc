// AF_UNIX datagram sockets with abstract names (the SOCKET transport), plus the
// few generic calls its two ends need: peer credentials of a stream socket, a
// non-consuming receive, and opening an existing file to attach to it.
// No protocol knowledge: names, sizes and checks are decided in TypeScript.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

// The full 110-byte abstract address: a NUL, at most 106 bytes of name, NUL
// padding. Both ends of a libqb SOCKET connection address each other this way.
socklen_t AbstractAddress(const std::string& name, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  size_t n = name.size() < sizeof(addr->sun_path) - 2 ? name.size() : sizeof(addr->sun_path) - 2;
  memcpy(addr->sun_path + 1, name.data(), n);
  return sizeof(*addr);
}

// Raises SO_SNDBUF/SO_RCVBUF to at least `size` when they are smaller. When the
// system maximum caps the value, the privileged *FORCE variant is tried (root).
void SizeBuffers(int fd, int size) {
  const int options[][2] = {{SO_SNDBUF, SO_SNDBUFFORCE}, {SO_RCVBUF, SO_RCVBUFFORCE}};
  for (const auto& opt : options) {
    int current = 0;
    socklen_t len = sizeof(current);
    if (getsockopt(fd, SOL_SOCKET, opt[0], &current, &len) == 0 && current > size) continue;
    setsockopt(fd, SOL_SOCKET, opt[0], &size, sizeof(size));
    len = sizeof(current);
    // The kernel reports twice the value it accepted; less than `size` means it was capped.
    if (getsockopt(fd, SOL_SOCKET, opt[0], &current, &len) == 0 && current / 2 < size) {
      setsockopt(fd, SOL_SOCKET, opt[1], &size, sizeof(size));
    }
  }
}

// dgramOpen(name, bufferSize, passCred) -> fd. Throws on failure.
// A non-blocking, close-on-exec datagram socket bound to the abstract `name`.
Napi::Value DgramOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "dgramOpen(name, bufferSize, passCred)");
  std::string name;
  uint32_t size;
  bool passCred;
  if (!args.String(0, "name", &name) || !args.Uint32(1, "bufferSize", INT32_MAX, &size) || !args.Bool(2, "passCred", &passCred)) {
    return args.Thrown();
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket", name);
  sockaddr_un addr;
  socklen_t len = AbstractAddress(name, &addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "bind", "@" + name);
  }
  if (passCred) {
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
  }
  SizeBuffers(fd, static_cast<int>(size));
  return Napi::Number::New(env, fd);
}

// dgramConnect(fd, name, bufferSize) -> 0 or -errno. A connected datagram
// socket receives only from its peer: the kernel refuses every other sender.
Napi::Value DgramConnect(const Napi::CallbackInfo& info) {
  Args args(info, "dgramConnect(fd, name, bufferSize)");
  int fd;
  std::string name;
  uint32_t size;
  if (!args.Fd(0, "fd", &fd) || !args.String(1, "name", &name) || !args.Uint32(2, "bufferSize", INT32_MAX, &size)) {
    return args.Thrown();
  }
  sockaddr_un addr;
  socklen_t len = AbstractAddress(name, &addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) return Napi::Number::New(info.Env(), -errno);
  SizeBuffers(fd, static_cast<int>(size));
  return Napi::Number::New(info.Env(), 0);
}

// sendv(fd, parts: Uint8Array[]) -> bytes or -errno: one message (one datagram
// on a datagram socket) gathered from the parts. Never blocks, never SIGPIPE.
Napi::Value Sendv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "sendv(fd, parts)");
  int fd;
  if (!args.Fd(0, "fd", &fd) || !args.Array(1, "parts")) return args.Thrown();
  Napi::Array parts = info[1].As<Napi::Array>();
  uint32_t count = parts.Length();
  if (count > IOV_MAX) return Napi::Number::New(env, -EMSGSIZE);
  iovec stack[16];
  std::vector<iovec> heap;
  iovec* iov = stack;
  if (count > 16) {
    heap.resize(count);
    iov = heap.data();
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value part;
    if (napi_get_element(env, parts, i, &part) != napi_ok) return args.Thrown();  // a getter threw
    uint8_t* data;
    if (!args.BytesOf(part, "parts[i]", &data, &iov[i].iov_len)) return args.Thrown();
    iov[i].iov_base = data;
  }
  msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

// dgramRecv(fd, into: Uint8Array, creds?: Int32Array[4]) -> the datagram's real
// length (larger than `into` when it was truncated: MSG_TRUNC), or -errno.
// With creds, they receive {pid, uid, gid, present} of the sender (SO_PASSCRED).
Napi::Value DgramRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "dgramRecv(fd, into, creds?)");
  int fd;
  uint8_t* into;
  size_t length, credsLength;
  int32_t* out = nullptr;
  if (!args.Fd(0, "fd", &fd) || !args.Bytes(1, "into", &into, &length)) return args.Thrown();
  bool wantCreds = !args.Omitted(2);
  if (wantCreds && !args.Int32s(2, "creds", 4, &out, &credsLength)) return args.Thrown();
  iovec iov = {into, length};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (wantCreds) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
  if (n < 0) return Napi::Number::New(env, -errno);
  if (wantCreds) {
    out[3] = 0;
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
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvPeek(fd, into) -> bytes that could be read, 0 at EOF, or -errno. Consumes nothing.
Napi::Value RecvPeek(const Napi::CallbackInfo& info) {
  Args args(info, "recvPeek(fd, into)");
  int fd;
  uint8_t* into;
  size_t length;
  if (!args.Fd(0, "fd", &fd) || !args.Bytes(1, "into", &into, &length)) return args.Thrown();
  ssize_t n = recv(fd, into, length, MSG_PEEK | MSG_DONTWAIT);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

// peerCredentials(fd, out: Int32Array[3]) -> 0 or -errno: SO_PEERCRED {pid, uid, gid}.
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Args args(info, "peerCredentials(fd, out)");
  int fd;
  int32_t* out;
  size_t length;
  if (!args.Fd(0, "fd", &fd) || !args.Int32s(1, "out", 3, &out, &length)) return args.Thrown();
  ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Napi::Number::New(info.Env(), -errno);
  out[0] = cred.pid;
  out[1] = static_cast<int32_t>(cred.uid);
  out[2] = static_cast<int32_t>(cred.gid);
  return Napi::Number::New(info.Env(), 0);
}

// openExisting(path, size) -> fd. Throws on failure. Opens a file another
// process created (O_RDWR, never through a symlink) and sizes it to `size`
// with ftruncate + posix_fallocate, as a libqb client does before mapping.
Napi::Value OpenExisting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "openExisting(path, size)");
  std::string path;
  size_t bytes;
  if (!args.String(0, "path", &path) || !args.Size(1, "size", 0, &bytes)) return args.Thrown();
  off_t size = static_cast<off_t>(bytes);
  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "open", path);
  if (ftruncate(fd, size) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ftruncate", path);
  }
  int err = posix_fallocate(fd, 0, size);
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    close(fd);
    return ThrowErrno(env, err, "posix_fallocate", path);
  }
  return Napi::Number::New(env, fd);
}

// pollTwo(fdA, eventsA, fdB, eventsB, timeoutMs) -> reventsA | reventsB << 16,
// 0 on timeout, or -errno. Blocks the calling thread (synchronous client calls).
Napi::Value PollTwo(const Napi::CallbackInfo& info) {
  Args args(info, "pollTwo(fdA, eventsA, fdB, eventsB, timeoutMs)");
  pollfd fds[2] = {};
  uint32_t eventsA, eventsB;
  int32_t timeout;
  if (!args.Fd(0, "fdA", &fds[0].fd) || !args.Uint32(1, "eventsA", 0xffff, &eventsA) || !args.Fd(2, "fdB", &fds[1].fd) ||
      !args.Uint32(3, "eventsB", 0xffff, &eventsB) || !args.Int32(4, "timeoutMs", &timeout)) {
    return args.Thrown();
  }
  fds[0].events = static_cast<short>(eventsA);
  fds[1].events = static_cast<short>(eventsB);
  int n = poll(fds, 2, timeout);
  if (n < 0) return Napi::Number::New(info.Env(), -errno);
  return Napi::Number::New(info.Env(), (fds[0].revents & 0xffff) | ((fds[1].revents & 0xffff) << 16));
}

}  // namespace

void InitDgram(Napi::Env env, Napi::Object exports) {
  exports.Set("dgramOpen", Napi::Function::New(env, DgramOpen));
  exports.Set("dgramConnect", Napi::Function::New(env, DgramConnect));
  exports.Set("sendv", Napi::Function::New(env, Sendv));
  exports.Set("dgramRecv", Napi::Function::New(env, DgramRecv));
  exports.Set("recvPeek", Napi::Function::New(env, RecvPeek));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  exports.Set("openExisting", Napi::Function::New(env, OpenExisting));
  exports.Set("pollTwo", Napi::Function::New(env, PollTwo));
}

}  // namespace qbipc
