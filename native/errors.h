// Errors raised by the native helper: a JS Error carrying errno/code/syscall,
// the same shape as Node's own system errors.
#pragma once
#include <napi.h>
#include <string>

namespace qbipc {

// Throws a JS Error for `err` (a positive errno) and returns undefined.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& subject);

// Throws a TypeError for a bad argument and returns undefined.
Napi::Value ThrowType(Napi::Env env, const char* what);

// Returns -errno of the last failed call: the helper's convention for
// expected failures on hot paths (no exception, no allocation).
inline int NegErrno() { return -errno; }

}  // namespace qbipc
