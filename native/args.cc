#include "args.h"

#include <cmath>
#include <cstdio>

namespace qbipc {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1: every integer up to it is exact

// "undefined", "type string ('abc')", "type number (-1)": what Node's own argument errors print.
std::string Describe(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  switch (type) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean: {
      bool b = false;
      napi_get_value_bool(env, value, &b);
      return b ? "type boolean (true)" : "type boolean (false)";
    }
    case napi_number: {
      double d = 0;
      napi_get_value_double(env, value, &d);
      char text[40];
      snprintf(text, sizeof(text), "%.17g", d);
      return std::string("type number (") + text + ")";
    }
    case napi_string: {
      char text[28];
      size_t length = 0;
      napi_get_value_string_utf8(env, value, text, sizeof(text), &length);
      std::string shown;
      for (size_t k = 0; k < length; k++) shown += text[k] == '\0' ? std::string("\\0") : std::string(1, text[k]);
      return "type string ('" + shown + (length == sizeof(text) - 1 ? "...')" : "')");
    }
    case napi_function:
      return "a function";
    case napi_symbol:
      return "type symbol";
    case napi_bigint:
      return "type bigint";
    default:
      break;
  }
  bool flag = false;
  if (napi_is_typedarray(env, value, &flag) == napi_ok && flag) {
    napi_typedarray_type kind;
    napi_get_typedarray_info(env, value, &kind, nullptr, nullptr, nullptr, nullptr);
    return kind == napi_int32_array ? "an Int32Array" : kind == napi_uint8_array ? "a Uint8Array" : "another TypedArray";
  }
  if (napi_is_array(env, value, &flag) == napi_ok && flag) return "an Array";
  if (napi_is_arraybuffer(env, value, &flag) == napi_ok && flag) return "an ArrayBuffer";
  return "an object";
}

size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;  // float64, bigint64, biguint64
  }
}

}  // namespace

bool Args::Fail(Kind kind, napi_value value, const char* name, const char* expected) const {
  napi_env env = info_.Env();
  std::string message =
      std::string(signature_) + ": the \"" + name + "\" argument must be " + expected + ". Received " + Describe(env, value);
  Napi::Error error = kind == Kind::kRange ? static_cast<Napi::Error>(Napi::RangeError::New(env, message))
                                           : static_cast<Napi::Error>(Napi::TypeError::New(env, message));
  const char* code = kind == Kind::kRange ? "ERR_OUT_OF_RANGE" : kind == Kind::kValue ? "ERR_INVALID_ARG_VALUE" : "ERR_INVALID_ARG_TYPE";
  error.Set("code", Napi::String::New(env, code));
  error.ThrowAsJavaScriptException();
  return false;
}

bool Args::TypeError(napi_value value, const char* name, const char* expected) const {
  return Fail(Kind::kType, value, name, expected);
}

bool Args::RangeError(napi_value value, const char* name, const char* expected) const {
  return Fail(Kind::kRange, value, name, expected);
}

bool Args::Integer(size_t i, const char* name, double min, double max, const char* expected, double* out, double shown) const {
  napi_value value = At(i);
  double d;
  // napi_number_expected when it is no number: the type check costs nothing more.
  bool isNumber = napi_get_value_double(info_.Env(), value, &d) == napi_ok;
  if (isNumber && d >= min && d <= max && d == std::floor(d)) {
    *out = d;
    return true;
  }
  // Failure only from here (a hot path pays no formatting): `expected` may hold a %.0f for `shown`.
  char text[96];
  snprintf(text, sizeof(text), expected, shown);
  return isNumber ? RangeError(value, name, text) : TypeError(value, name, text);
}

bool Args::Fd(size_t i, const char* name, int* out) const {
  double d;
  if (!Integer(i, name, 0, INT32_MAX, "a file descriptor (an integer >= 0)", &d)) return false;
  *out = static_cast<int>(d);
  return true;
}

bool Args::DirFd(size_t i, const char* name, int* out) const {
  double d;
  const char* expected = "a directory file descriptor (an integer >= 0, or -100: AT_FDCWD)";
  if (!Integer(i, name, kCurrentDirectory, INT32_MAX, expected, &d)) return false;
  if (d < 0 && d != kCurrentDirectory) return RangeError(At(i), name, expected);
  *out = static_cast<int>(d);
  return true;
}

bool Args::Int32(size_t i, const char* name, int32_t* out) const {
  double d;
  if (!Integer(i, name, INT32_MIN, INT32_MAX, "an int32 (an integer from -2^31 to 2^31 - 1)", &d)) return false;
  *out = static_cast<int32_t>(d);
  return true;
}

bool Args::Uint32(size_t i, const char* name, uint32_t max, uint32_t* out) const {
  double d;
  if (!Integer(i, name, 0, max, "an integer from 0 to %.0f", &d, max)) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

bool Args::OwnerId(size_t i, const char* name, uint32_t* out) const {
  double d;
  if (!Integer(i, name, -1, UINT32_MAX - 1.0, "a user or group id (an integer >= 0, or -1: unchanged)", &d)) return false;
  *out = d < 0 ? UINT32_MAX : static_cast<uint32_t>(d);
  return true;
}

bool Args::Size(size_t i, const char* name, size_t min, size_t* out) const {
  double d;
  if (!Integer(i, name, static_cast<double>(min), kMaxSafeInteger, "a size (an integer from %.0f to 2^53 - 1)", &d,
               static_cast<double>(min))) {
    return false;
  }
  *out = static_cast<size_t>(d);
  return true;
}

bool Args::Number(size_t i, const char* name, double* out) const {
  napi_value value = At(i);
  if (napi_get_value_double(info_.Env(), value, out) != napi_ok) return TypeError(value, name, "of type number");
  if (std::isnan(*out)) return RangeError(value, name, "a number (not NaN)");
  return true;
}

bool Args::Bool(size_t i, const char* name, bool* out) const {
  napi_value value = At(i);
  if (napi_get_value_bool(info_.Env(), value, out) != napi_ok) return TypeError(value, name, "of type boolean");
  return true;
}

bool Args::String(size_t i, const char* name, std::string* out) const {
  napi_value value = At(i);
  napi_env env = info_.Env();
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok) return TypeError(value, name, "of type string");
  out->resize(length);
  napi_get_value_string_utf8(env, value, out->data(), length + 1, &length);
  if (out->find('\0') != std::string::npos) return Fail(Kind::kValue, value, name, "a string without NUL characters");
  return true;
}

bool Args::BytesOf(napi_value value, const char* name, uint8_t** data, size_t* length) const {
  napi_typedarray_type type;
  size_t elements = 0;
  void* bytes = nullptr;
  // napi_invalid_arg when it is no TypedArray: again the read is the check.
  if (napi_get_typedarray_info(info_.Env(), value, &type, &elements, &bytes, nullptr, nullptr) != napi_ok) {
    return TypeError(value, name, "a Uint8Array (or another TypedArray)");
  }
  *data = static_cast<uint8_t*>(bytes);
  *length = elements * ElementSize(type);
  return true;
}

bool Args::Bytes(size_t i, const char* name, uint8_t** data, size_t* length) const {
  return BytesOf(At(i), name, data, length);
}

bool Args::Int32s(size_t i, const char* name, size_t minLength, int32_t** data, size_t* length) const {
  napi_value value = At(i);
  napi_typedarray_type type;
  void* words = nullptr;
  if (napi_get_typedarray_info(info_.Env(), value, &type, length, &words, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
    return TypeError(value, name, "an Int32Array");
  }
  if (*length < minLength) {
    char expected[64];
    snprintf(expected, sizeof(expected), "an Int32Array of at least %zu elements", minLength);
    return RangeError(value, name, expected);
  }
  *data = static_cast<int32_t*>(words);
  return true;
}

bool Args::Function(size_t i, const char* name) const {
  napi_value value = At(i);
  napi_valuetype type = napi_undefined;
  if (napi_typeof(info_.Env(), value, &type) != napi_ok || type != napi_function) return TypeError(value, name, "a function");
  return true;
}

bool Args::Array(size_t i, const char* name) const {
  napi_value value = At(i);
  bool is = false;
  if (napi_is_array(info_.Env(), value, &is) != napi_ok || !is) return TypeError(value, name, "an Array");
  return true;
}

bool Args::Omitted(size_t i) const {
  if (i >= info_.Length()) return true;
  napi_valuetype type = napi_undefined;
  return napi_typeof(info_.Env(), At(i), &type) == napi_ok && type == napi_undefined;
}

}  // namespace qbipc
