// Errors raised by the native helper: a JS Error carrying errno/code/syscall,
// the same shape as Node's own system errors. (Argument errors: args.h.)
#pragma once
#include <napi.h>
#include <string>

namespace qbipc {

// Throws a JS Error for `err` (a positive errno) and returns undefined.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& subject);

// The same error with a message of its own (what failed and what it means).
Napi::Value ThrowErrnoMessage(Napi::Env env, int err, const char* syscall, const std::string& message);

// Returns -errno of the last failed call: the helper's convention for
// expected failures on hot paths (no exception, no allocation).
inline int NegErrno() {
  return -errno;
}

}  // namespace qbipc
