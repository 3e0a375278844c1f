// Shared-memory files: the per-connection directory, O_EXCL file creation,
// ownership, and mappings exposed to JavaScript as SharedArrayBuffers.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <v8.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "busguard.h"
#include "errors.h"
#include "exports.h"

namespace qbipc {
namespace {

// N-API on Node 20 cannot wrap external memory in a SharedArrayBuffer, so the
// buffer is made with V8's API. A napi_value is, in Node, the bits of a
// v8::Local; this is the conversion Node itself performs.
napi_value ToNapi(v8::Local<v8::Value> value) {
  static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value layout");
  napi_value result;
  memcpy(&result, &value, sizeof(result));
  return result;
}

struct Mapping {
  void* base;
  size_t length;
};

// The buffer owns the mapping: it is unmapped when the last SharedArrayBuffer
// over it (in any thread) is collected, so JS can never touch unmapped memory.
Napi::Value WrapMapping(Napi::Env env, void* base, size_t visible, size_t mapped) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  auto* mapping = new Mapping{base, mapped};
  GuardMapping(base, mapped);  // the peer may truncate the file: SIGBUS becomes a fault JS can see
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      base, visible,
      [](void*, size_t, void* data) {
        auto* m = static_cast<Mapping*>(data);
        UnguardMapping(m->base);
        munmap(m->base, m->length);
        delete m;
      },
      mapping);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  return Napi::Value(env, ToNapi(sab));
}

size_t SizeArg(const Napi::Value& v) { return static_cast<size_t>(v.As<Napi::Number>().Int64Value()); }

// makeTempDir(template ending in XXXXXX) -> path. Created 0700 by mkdtemp.
Napi::Value MakeTempDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowType(env, "makeTempDir(template: string)");
  std::string path = info[0].As<Napi::String>();
  if (mkdtemp(path.data()) == nullptr) return ThrowErrno(env, errno, "mkdtemp", path);
  return Napi::String::New(env, path);
}

// openDirectory(path) -> fd or -errno. Refuses symlinks, so a directory renamed
// and replaced by its owner cannot redirect us.
Napi::Value OpenDirectory(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : fd);
}

// fileIdentity(fd) -> "dev:ino", to recognise our own directory later.
Napi::Value FileIdentity(const Napi::CallbackInfo& info) {
  struct stat st;
  if (fstat(info[0].As<Napi::Number>().Int32Value(), &st) < 0) return ThrowErrno(info.Env(), errno, "fstat", "");
  return Napi::String::New(info.Env(), std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
}

// createFileAt(dirFd, name, size, mode) -> fd. O_EXCL + O_NOFOLLOW: never an
// existing file, never through a link. Sized with ftruncate + posix_fallocate.
Napi::Value CreateFileAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dir = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>();
  off_t size = static_cast<off_t>(info[2].As<Napi::Number>().Int64Value());
  mode_t mode = info[3].As<Napi::Number>().Uint32Value();
  int fd = openat(dir, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return ThrowErrno(env, errno, "open", name);
  if (ftruncate(fd, size) < 0) {
    int err = errno;
    close(fd);
    unlinkat(dir, name.c_str(), 0);
    return ThrowErrno(env, err, "ftruncate", name);
  }
  int err = posix_fallocate(fd, 0, size);
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    close(fd);
    unlinkat(dir, name.c_str(), 0);
    return ThrowErrno(env, err, "posix_fallocate", name);
  }
  return Napi::Number::New(env, fd);
}

// fchown(fd, uid, gid) / fchmod(fd, mode) -> 0 or -errno.
Napi::Value Fchown(const Napi::CallbackInfo& info) {
  int rc = fchown(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value(),
                  info[2].As<Napi::Number>().Uint32Value());
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

Napi::Value Fchmod(const Napi::CallbackInfo& info) {
  int rc = fchmod(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Uint32Value());
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

// unlinkAt(dirFd, name, isDirectory) -> 0 or -errno.
Napi::Value UnlinkAt(const Napi::CallbackInfo& info) {
  std::string name = info[1].As<Napi::String>();
  int rc = unlinkat(info[0].As<Napi::Number>().Int32Value(), name.c_str(), info[2].ToBoolean() ? AT_REMOVEDIR : 0);
  return Napi::Number::New(info.Env(), rc < 0 ? -errno : 0);
}

// mapShared(fd, size) -> SharedArrayBuffer over a MAP_SHARED mapping of the file.
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t size = SizeArg(info[1]);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, info[0].As<Napi::Number>().Int32Value(), 0);
  if (base == MAP_FAILED) return ThrowErrno(env, errno, "mmap", "");
  return WrapMapping(env, base, size, size);
}

// mapRing(fd, size) -> SharedArrayBuffer of 2*size bytes: the file mapped twice
// back to back, so a chunk that wraps past the end reads as one contiguous span.
Napi::Value MapRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  size_t size = SizeArg(info[1]);
  void* base = mmap(nullptr, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return ThrowErrno(env, errno, "mmap", "");
  char* low = static_cast<char*>(base);
  if (mmap(low, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
      mmap(low + size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
    int err = errno;
    munmap(base, 2 * size);
    return ThrowErrno(env, err, "mmap", "");
  }
  return WrapMapping(env, base, 2 * size, 2 * size);
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
}

}  // namespace qbipc
