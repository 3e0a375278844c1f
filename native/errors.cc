#include "errors.h"

#include <cerrno>
#include <cstring>

namespace qbipc {

namespace {

Napi::Value Throw(Napi::Env env, int err, const char* syscall, const std::string& subject, const std::string& message) {
  const char* code = strerrorname_np(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("code", Napi::String::New(env, code != nullptr ? code : "UNKNOWN"));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!subject.empty()) error.Set("path", Napi::String::New(env, subject));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& subject) {
  const char* code = strerrorname_np(err);
  std::string message = std::string(syscall);
  if (!subject.empty()) message += " " + subject;
  message += ": ";
  message += strerror(err);
  if (code != nullptr) message += std::string(" (") + code + ")";
  return Throw(env, err, syscall, subject, message);
}

Napi::Value ThrowErrnoMessage(Napi::Env env, int err, const char* syscall, const std::string& message) {
  return Throw(env, err, syscall, "", message);
}

}  // namespace qbipc
