// Copying bytes into a ring. V8 copies into or out of a SharedArrayBuffer with
// relaxed atomic moves (TypedArray.prototype.set), several times slower than
// memcpy for large messages; the ring's readers synchronise on the chunk's
// magic word, written after the copy, so a plain memcpy is enough here.
#include <cstring>

#include "args.h"
#include "exports.h"

namespace qbipc {
namespace {

// copyBytes(target: TypedArray, offset, source: TypedArray) -> undefined.
// Copies all of source's bytes into target's, starting at byte `offset`.
Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  Args args(info, "copyBytes(target, offset, source)");
  uint8_t* target = nullptr;
  uint8_t* source = nullptr;
  size_t targetLength = 0, sourceLength = 0, offset = 0;
  if (!args.Bytes(0, "target", &target, &targetLength) || !args.Size(1, "offset", 0, &offset) ||
      !args.Bytes(2, "source", &source, &sourceLength)) {
    return args.Thrown();
  }
  if (offset > targetLength || sourceLength > targetLength - offset) {
    args.RangeError(args.At(1), "offset", "an offset where all of source fits into target");
    return args.Thrown();
  }
  memmove(target + offset, source, sourceLength);  // views of one buffer may overlap
  return info.Env().Undefined();
}

}  // namespace

void InitCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("copyBytes", Napi::Function::New(env, CopyBytes));
}

}  // namespace qbipc
