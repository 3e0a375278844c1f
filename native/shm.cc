// Shared-memory files: the per-connection directory, O_EXCL file creation,
// ownership, and mappings exposed to JavaScript as SharedArrayBuffers.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <v8.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "args.h"
#include "busguard.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

// N-API on Node 20 cannot wrap external memory in a SharedArrayBuffer, so the
// buffer is made (and recognised) with V8's API. A napi_value is, in Node, the
// bits of a v8::Local; these are the conversions Node itself performs.
napi_value ToNapi(v8::Local<v8::Value> value) {
  static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value layout");
  napi_value result;
  memcpy(&result, &value, sizeof(result));
  return result;
}

v8::Local<v8::Value> FromNapi(napi_value value) {
  v8::Local<v8::Value> result;
  memcpy(static_cast<void*>(&result), &value, sizeof(value));
  return result;
}

// makeTempDir(template ending in XXXXXX) -> path. Created 0700 by mkdtemp.
Napi::Value MakeTempDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "makeTempDir(template)");
  std::string path;
  if (!args.String(0, "template", &path)) return args.Thrown();
  if (mkdtemp(path.data()) == nullptr) return ThrowErrno(env, errno, "mkdtemp", path);
  return Napi::String::New(env, path);
}

// openDirectory(path) -> fd or -errno. Refuses symlinks, so a directory renamed
// and replaced by its owner cannot redirect us.
Napi::Value OpenDirectory(const Napi::CallbackInfo& info) {
  Args args(info, "openDirectory(path)");
  std::string path;
  if (!args.String(0, "path", &path)) return args.Thrown();
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : fd);
}

// fileIdentity(fd) -> "dev:ino", to recognise our own directory later.
Napi::Value FileIdentity(const Napi::CallbackInfo& info) {
  Args args(info, "fileIdentity(fd)");
  int fd;
  if (!args.Fd(0, "fd", &fd)) return args.Thrown();
  struct stat st;
  if (fstat(fd, &st) < 0) return ThrowErrno(info.Env(), errno, "fstat", "");
  return Napi::String::New(info.Env(), std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
}

// createFileAt(dirFd, name, size, mode) -> fd. O_EXCL + O_NOFOLLOW: never an
// existing file, never through a link. Sized with ftruncate + posix_fallocate.
Napi::Value CreateFileAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args args(info, "createFileAt(dirFd, name, size, mode)");
  int dir;
  std::string name;
  size_t size;
  uint32_t mode;
  if (!args.DirFd(0, "dirFd", &dir) || !args.String(1, "name", &name) || !args.Size(2, "size", 0, &size) ||
      !args.Uint32(3, "mode", 07777, &mode)) {
    return args.Thrown();
  }
  int fd = openat(dir, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return ThrowErrno(env, errno, "open", name);
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    unlinkat(dir, name.c_str(), 0);
    return ThrowErrno(env, err, "ftruncate", name);
  }
  int err = posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    close(fd);
    unlinkat(dir, name.c_str(), 0);
    return ThrowErrno(env, err, "posix_fallocate", name);
  }
  return Napi::Number::New(env, fd);
}

// fchown(fd, uid, gid) / fchmod(fd, mode) -> 0 or -errno. uid or gid -1: unchanged.
Napi::Value Fchown(const Napi::CallbackInfo& info) {
  Args args(info, "fchown(fd, uid, gid)");
  int fd;
  uint32_t uid, gid;
  if (!args.Fd(0, "fd", &fd) || !args.OwnerId(1, "uid", &uid) || !args.OwnerId(2, "gid", &gid)) return args.Thrown();
  int rc = fchown(fd, uid, gid);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

Napi::Value Fchmod(const Napi::CallbackInfo& info) {
  Args args(info, "fchmod(fd, mode)");
  int fd;
  uint32_t mode;
  if (!args.Fd(0, "fd", &fd) || !args.Uint32(1, "mode", 07777, &mode)) return args.Thrown();
  int rc = fchmod(fd, mode);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

// unlinkAt(dirFd, name, isDirectory) -> 0 or -errno.
Napi::Value UnlinkAt(const Napi::CallbackInfo& info) {
  Args args(info, "unlinkAt(dirFd, name, isDirectory)");
  int dir;
  std::string name;
  bool isDirectory;
  if (!args.DirFd(0, "dirFd", &dir) || !args.String(1, "name", &name) || !args.Bool(2, "isDirectory", &isDirectory)) {
    return args.Thrown();
  }
  int rc = unlinkat(dir, name.c_str(), isDirectory ? AT_REMOVEDIR : 0);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

constexpr size_t kMaxParts = 32;

// One reservation for one or more files (a connection's: one call to map them,
// one to release them, instead of one per file; the kernel still flushes the TLB
// once per file mapping). Each part's buffer holds a reference and the last one
// collected (on any thread) unmaps the whole range, so JS can never touch
// unmapped memory; releaseMapping() may give the pages back earlier, the range
// staying reserved. Each part is guarded on its own: the peer may truncate a file
// at any time, and a SIGBUS then faults only its part, so the others still reach
// the peer. A mapping the guard cannot take is never handed out.
struct Region {
  void* base;
  size_t length;
  size_t parts;
  GuardSlot* guards[kMaxParts];
  std::atomic<size_t> buffers;
};

void UnguardRegion(Region* r, size_t parts) {
  for (size_t i = 0; i < parts; i++) UnguardMapping(r->guards[i]);
}

// The files fds[i] of sizes[i] bytes (bit i of `doubled`: mapped twice back to
// back, sizes[i] then a page multiple), each part on a page boundary. Arguments
// are checked by the callers. Returns an array of SharedArrayBuffers.
Napi::Value MapParts(Napi::Env env, const int* fds, const size_t* sizes, size_t count, uint32_t doubled) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t offsets[kMaxParts];
  size_t visible[kMaxParts];
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    visible[i] = ((doubled >> i) & 1) != 0 ? 2 * sizes[i] : sizes[i];
    offsets[i] = total;
    total += (visible[i] + page - 1) / page * page;
  }
  void* base = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return ThrowErrno(env, errno, "mmap", "");
  char* at = static_cast<char*>(base);
  for (size_t i = 0; i < count; i++) {
    bool ok = mmap(at + offsets[i], sizes[i], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fds[i], 0) != MAP_FAILED;
    if (ok && visible[i] != sizes[i]) {
      ok = mmap(at + offsets[i] + sizes[i], sizes[i], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fds[i], 0) != MAP_FAILED;
    }
    if (!ok) {
      int err = errno;
      munmap(base, total);
      return ThrowErrno(env, err, "mmap", "");
    }
  }
  auto* region = new Region{base, total, count, {}, {count}};
  for (size_t i = 0; i < count; i++) {
    region->guards[i] = GuardMapping(at + offsets[i], visible[i], base, total);
    if (region->guards[i] == nullptr) {
      UnguardRegion(region, i);
      munmap(base, total);
      delete region;
      return ThrowErrnoMessage(env, ENOMEM, "mmap",
                               "cannot register the mapping with the SIGBUS guard (out of memory); it was unmapped, not used unguarded");
    }
  }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  Napi::Array buffers = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; i++) {
    std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
        at + offsets[i], visible[i],
        [](void*, size_t, void* data) {
          auto* r = static_cast<Region*>(data);
          if (r->buffers.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
          UnguardRegion(r, r->parts);
          munmap(r->base, r->length);
          delete r;
        },
        region);
    v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
    buffers.Set(static_cast<uint32_t>(i), Napi::Value(env, ToNapi(sab)));
  }
  return buffers;
}

// One file in a range of its own: the buffer, or undefined with an exception pending.
Napi::Value MapOne(Napi::Env env, int fd, size_t size, bool twice) {
  Napi::Value buffers = MapParts(env, &fd, &size, 1, twice ? 1 : 0);
  if (env.IsExceptionPending()) return env.Undefined();
  return buffers.As<Napi::Array>().Get(0u);
}

// mapShared(fd, size) -> SharedArrayBuffer over a MAP_SHARED mapping of the file.
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Args args(info, "mapShared(fd, size)");
  int fd;
  size_t size;
  if (!args.Fd(0, "fd", &fd) || !args.Size(1, "size", 1, &size)) return args.Thrown();
  return MapOne(info.Env(), fd, size, false);
}

// mapRing(fd, size) -> SharedArrayBuffer of 2*size bytes: the file mapped twice
// back to back, so a chunk that wraps past the end reads as one contiguous span.
Napi::Value MapRing(const Napi::CallbackInfo& info) {
  Args args(info, "mapRing(fd, size)");
  int fd;
  size_t size;
  if (!args.Fd(0, "fd", &fd) || !args.Size(1, "size", 1, &size)) return args.Thrown();
  return MapOne(info.Env(), fd, size, true);
}

// mapFiles(fds: Int32Array, sizes: Int32Array, doubled: bit i = part i mapped
// twice back to back, as mapRing) -> one SharedArrayBuffer per part, all in one
// reserved range (MapParts).
Napi::Value MapFiles(const Napi::CallbackInfo& info) {
  Args args(info, "mapFiles(fds, sizes, doubled)");
  int32_t* fds;
  int32_t* sizes;
  size_t count, sizeCount;
  uint32_t doubled;
  if (!args.Int32s(0, "fds", 1, &fds, &count) || !args.Int32s(1, "sizes", count, &sizes, &sizeCount) ||
      !args.Uint32(2, "doubled", UINT32_MAX, &doubled)) {
    return args.Thrown();
  }
  if (count > kMaxParts) {
    args.RangeError(args.At(0), "fds", "at most 32 files");
    return args.Thrown();
  }
  if (sizeCount != count) {
    args.RangeError(args.At(1), "sizes", "one size per fd");
    return args.Thrown();
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  int partFds[kMaxParts];
  size_t partSizes[kMaxParts];
  for (size_t i = 0; i < count; i++) {
    if (fds[i] < 0) {
      args.RangeError(args.At(0), "fds", "descriptors (integers >= 0)");
      return args.Thrown();
    }
    bool twice = ((doubled >> i) & 1) != 0;
    if (sizes[i] <= 0 || (twice && static_cast<size_t>(sizes[i]) % page != 0)) {
      args.RangeError(args.At(1), "sizes", "sizes >= 1, page multiples where mapped twice");
      return args.Thrown();
    }
    partFds[i] = fds[i];
    partSizes[i] = static_cast<size_t>(sizes[i]);
  }
  return MapParts(info.Env(), partFds, partSizes, count, doubled);
}

// releaseMapping(buffer: SharedArrayBuffer from mapShared/mapRing/mapFiles) -> true
// when released now, false when it was released already (or is not such a
// mapping). A buffer of mapFiles releases its whole range, every part.
// The pages become private zero pages at once: the file's memory goes back to
// the system when its last mapping goes, without waiting for V8 to collect
// `buffer`, and views still over it read zeros instead of faulting.
Napi::Value ReleaseMappingCall(const Napi::CallbackInfo& info) {
  Args args(info, "releaseMapping(buffer)");
  v8::Local<v8::Value> value = FromNapi(args.At(0));
  if (!value->IsSharedArrayBuffer()) {
    args.TypeError(args.At(0), "buffer", "a SharedArrayBuffer returned by mapShared or mapRing");
    return args.Thrown();
  }
  int rc = ReleaseMapping(value.As<v8::SharedArrayBuffer>()->Data());
  if (rc == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (rc < 0) return ThrowErrno(info.Env(), -rc, "mmap", "");
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

void InitShm(Napi::Env env, Napi::Object exports) {
  exports.Set("makeTempDir", Napi::Function::New(env, MakeTempDir));
  exports.Set("openDirectory", Napi::Function::New(env, OpenDirectory));
  exports.Set("fileIdentity", Napi::Function::New(env, FileIdentity));
  exports.Set("createFileAt", Napi::Function::New(env, CreateFileAt));
  exports.Set("fchown", Napi::Function::New(env, Fchown));
  exports.Set("fchmod", Napi::Function::New(env, Fchmod));
  exports.Set("unlinkAt", Napi::Function::New(env, UnlinkAt));
  exports.Set("mapShared", Napi::Function::New(env, MapShared));
  exports.Set("mapRing", Napi::Function::New(env, MapRing));
  exports.Set("mapFiles", Napi::Function::New(env, MapFiles));
  exports.Set("releaseMapping", Napi::Function::New(env, ReleaseMappingCall));
}

}  // namespace qbipc
