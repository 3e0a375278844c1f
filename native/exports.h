// One initialiser per native concept; addon.cc calls them all.
#pragma once
#include <napi.h>

namespace qbipc {
void InitSocket(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);
void InitFutex(Napi::Env env, Napi::Object exports);
void InitPoller(Napi::Env env, Napi::Object exports);
void InitDgram(Napi::Env env, Napi::Object exports);
void InitSemWait(Napi::Env env, Napi::Object exports);
void InitBusGuard(Napi::Env env, Napi::Object exports);
void InitSched(Napi::Env env, Napi::Object exports);
void InitCopy(Napi::Env env, Napi::Object exports);
}  // namespace qbipc
