// Argument checks for every native entry point. A JS value of the wrong type
// must never reach a syscall as 0 (close(undefined) would close fd 0), so each
// entry point reads its arguments through Args first: a wrong or missing one
// throws a TypeError (code ERR_INVALID_ARG_TYPE; ERR_INVALID_ARG_VALUE for a
// string holding NUL) or a RangeError (ERR_OUT_OF_RANGE) naming the call, the
// argument and what was expected.
// Each check is the N-API read the call needs anyway (its status says whether
// the type matched), so the hot paths pay no extra call.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace qbipc {

// AT_FDCWD, accepted where a directory fd may name the current directory.
constexpr int kCurrentDirectory = -100;

class Args {
 public:
  // signature: the call as JS writes it, e.g. "close(fd)", used in messages.
  Args(const Napi::CallbackInfo& info, const char* signature) : info_(info), signature_(signature) {}

  // Each reader returns true with *out set, or false with an exception pending;
  // the entry point then returns Thrown().
  bool Fd(size_t i, const char* name, int* out) const;                         // integer >= 0
  bool DirFd(size_t i, const char* name, int* out) const;                      // integer >= 0 or AT_FDCWD
  bool Int32(size_t i, const char* name, int32_t* out) const;                  // any int32
  bool Uint32(size_t i, const char* name, uint32_t max, uint32_t* out) const;  // 0 ..= max
  bool OwnerId(size_t i, const char* name, uint32_t* out) const;               // uid/gid, or -1: unchanged
  bool Size(size_t i, const char* name, size_t min, size_t* out) const;        // integer >= min (<= 2^53)
  bool Number(size_t i, const char* name, double* out) const;                  // any number but NaN
  bool Bool(size_t i, const char* name, bool* out) const;
  bool String(size_t i, const char* name, std::string* out) const;
  // Any TypedArray, as bytes.
  bool Bytes(size_t i, const char* name, uint8_t** data, size_t* length) const;
  bool BytesOf(napi_value value, const char* name, uint8_t** data, size_t* length) const;  // the same, for a value
  // An Int32Array of at least minLength elements.
  bool Int32s(size_t i, const char* name, size_t minLength, int32_t** data, size_t* length) const;
  bool Function(size_t i, const char* name) const;
  bool Array(size_t i, const char* name) const;
  // Whether argument i is absent or undefined (optional arguments).
  bool Omitted(size_t i) const;

  // For checks the readers above do not cover.
  bool TypeError(napi_value value, const char* name, const char* expected) const;
  bool RangeError(napi_value value, const char* name, const char* expected) const;

  Napi::Value Thrown() const { return info_.Env().Undefined(); }
  // Argument i, undefined when absent.
  napi_value At(size_t i) const { return info_[i]; }

 private:
  enum class Kind { kType, kRange, kValue };  // ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE
  bool Integer(size_t i, const char* name, double min, double max, const char* expected, double* out, double shown = 0) const;
  bool Fail(Kind kind, napi_value value, const char* name, const char* expected) const;

  const Napi::CallbackInfo& info_;
  const char* signature_;
};

}  // namespace qbipc
