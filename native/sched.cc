// The calling thread's CPU: giving it away (sched_yield), its scheduling
// policy (a serving thread may run SCHED_RR, as corosync runs its own loop) and
// the CPUs it may run on (a worker keeps to one CPU, with its clients).
#include <errno.h>
#include <sched.h>

#include "args.h"
#include "exports.h"

namespace qbipc {
namespace {

// The policies scheduling() reports and setScheduling() takes.
constexpr uint32_t kOther = 0;
constexpr uint32_t kFifo = 1;
constexpr uint32_t kRoundRobin = 2;

// yieldCpu() -> undefined. After waking a client that sleeps on its response,
// the client often shares our CPU; yielding lets it run now, so its next request
// is in the ring before we look again. sched_yield(2) cannot fail on Linux; with
// nothing else runnable on this CPU it returns at once.
Napi::Value YieldCpu(const Napi::CallbackInfo& info) {
  sched_yield();
  return info.Env().Undefined();
}

// scheduling() -> [policy, priority] of the calling thread: policy 0 (normal,
// or batch/idle), 1 (FIFO) or 2 (round robin); priority 0 unless real-time.
Napi::Value Scheduling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
  sched_param param{};
  if (sched_getparam(0, &param) != 0) param.sched_priority = 0;
  Napi::Array result = Napi::Array::New(env, 2);
  uint32_t ours = policy == SCHED_FIFO ? kFifo : policy == SCHED_RR ? kRoundRobin : kOther;
  result.Set(0u, Napi::Number::New(env, ours));
  result.Set(1u, Napi::Number::New(env, ours == kOther ? 0 : param.sched_priority));
  return result;
}

// setScheduling(policy, priority) -> 0 or -errno (-EPERM without CAP_SYS_NICE
// or an RLIMIT_RTPRIO that allows it). Only the calling thread changes. A
// real-time policy is set with SCHED_RESET_ON_FORK: processes the service
// starts run at normal priority.
Napi::Value SetScheduling(const Napi::CallbackInfo& info) {
  Args args(info, "setScheduling(policy, priority)");
  uint32_t policy;
  uint32_t priority;
  if (!args.Uint32(0, "policy", kRoundRobin, &policy) || !args.Uint32(1, "priority", 99, &priority)) return args.Thrown();
  if ((policy == kOther) != (priority == 0)) {
    args.RangeError(args.At(1), "priority", "0 with policy 0, 1 to 99 with a real-time policy");
    return args.Thrown();
  }
  sched_param param{};
  param.sched_priority = static_cast<int>(priority);
  int native = policy == kFifo ? SCHED_FIFO | SCHED_RESET_ON_FORK : policy == kRoundRobin ? SCHED_RR | SCHED_RESET_ON_FORK : SCHED_OTHER;
  int rc = sched_setscheduler(0, native, &param);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -errno);
}

// cpuAffinity() -> the CPUs the calling thread may run on, ascending.
Napi::Value CpuAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cpu_set_t set;
  CPU_ZERO(&set);
  Napi::Array result = Napi::Array::New(env);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return result;
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (CPU_ISSET(cpu, &set)) result.Set(n++, Napi::Number::New(env, cpu));
  }
  return result;
}

// setCpuAffinity(cpus: Int32Array) -> 0 or -errno (-EINVAL when none of them is
// allowed to this process). Only the calling thread changes.
Napi::Value SetCpuAffinity(const Napi::CallbackInfo& info) {
  Args args(info, "setCpuAffinity(cpus)");
  int32_t* cpus;
  size_t length;
  if (!args.Int32s(0, "cpus", 1, &cpus, &length)) return args.Thrown();
  cpu_set_t set;
  CPU_ZERO(&set);
  for (size_t i = 0; i < length; i++) {
    if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) {
      args.RangeError(args.At(0), "cpus", "CPU numbers from 0 to 1023");
      return args.Thrown();
    }
    CPU_SET(cpus[i], &set);
  }
  int rc = sched_setaffinity(0, sizeof(set), &set);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -errno);
}

}  // namespace

void InitSched(Napi::Env env, Napi::Object exports) {
  exports.Set("yieldCpu", Napi::Function::New(env, YieldCpu));
  exports.Set("scheduling", Napi::Function::New(env, Scheduling));
  exports.Set("setScheduling", Napi::Function::New(env, SetScheduling));
  exports.Set("cpuAffinity", Napi::Function::New(env, CpuAffinity));
  exports.Set("setCpuAffinity", Napi::Function::New(env, SetCpuAffinity));
}

}  // namespace qbipc
