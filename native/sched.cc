// Giving the CPU away. After waking a client that sleeps on its response, the
// client often shares our CPU; yielding lets it run now, so its next request
// is in the ring before we look again (no trip through the event loop).
#include <sched.h>

#include "exports.h"

namespace qbipc {
namespace {

// yieldCpu() -> undefined. sched_yield(2) cannot fail on Linux; with nothing
// else runnable on this CPU it returns at once.
Napi::Value YieldCpu(const Napi::CallbackInfo& info) {
  sched_yield();
  return info.Env().Undefined();
}

}  // namespace

void InitSched(Napi::Env env, Napi::Object exports) {
  exports.Set("yieldCpu", Napi::Function::New(env, YieldCpu));
}

}  // namespace qbipc
