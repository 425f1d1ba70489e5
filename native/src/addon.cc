// Thin N-API surface. Argument checking lives in the TypeScript facade (src/rt/native.ts);
// here we only convert and call.
#include <napi.h>

#include "notify.h"
#include "pty.h"

namespace {

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "sdNotify(path: string, message: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
#ifdef __linux__
  int err = reflex::SendNotify(info[0].As<Napi::String>(), info[1].As<Napi::String>());
#else
  int err = 95;  // EOPNOTSUPP: systemd exists only on Linux
#endif
  return Napi::Number::New(env, err);
}

Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef __linux__
  reflex::PtyPair p = reflex::OpenRawPty();
  out.Set("error", Napi::Number::New(env, p.error));
  out.Set("master", Napi::Number::New(env, p.master));
  out.Set("slave", Napi::Number::New(env, p.slave));
  out.Set("path", Napi::String::New(env, p.path));
#else
  out.Set("error", Napi::Number::New(env, 95));
#endif
  return out;
}

Napi::Value PtyBaud(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "ptyBaud(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
#ifdef __linux__
  return Napi::Number::New(env, static_cast<double>(reflex::PtyBaud(info[0].As<Napi::Number>().Int32Value())));
#else
  return Napi::Number::New(env, -95);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("openPty", Napi::Function::New(env, OpenPty));
  exports.Set("ptyBaud", Napi::Function::New(env, PtyBaud));
  return exports;
}

}  // namespace

NODE_API_MODULE(reflex_native, Init)
