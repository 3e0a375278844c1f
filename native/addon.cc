// Registration of the native helper's functions. The helper only wraps syscalls;
// every protocol rule lives in TypeScript (src/).
#include <napi.h>

#include "exports.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  qbipc::InitSocket(env, exports);
  qbipc::InitShm(env, exports);
  qbipc::InitFutex(env, exports);
  qbipc::InitPoller(env, exports);
  qbipc::InitDgram(env, exports);
  qbipc::InitSemWait(env, exports);
  qbipc::InitBusGuard(env, exports);
  qbipc::InitSched(env, exports);
  qbipc::InitCopy(env, exports);
  return exports;
}

NODE_API_MODULE(qbipc_native, Init)
