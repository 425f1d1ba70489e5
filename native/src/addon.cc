// Thin N-API surface. Argument checking lives in the TypeScript facade (src/rt/native.ts);
// here we only convert and call.
#include <chrono>
#include <thread>
#include <napi.h>
#include <cerrno>
#include <unistd.h>
#ifdef __linux__
#include <sys/file.h>
#include <sys/socket.h>
#endif

#include "can.h"
#include "notify.h"
#include "pty.h"
#include "serial_io.h"
#include "rt.h"

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

// serialWrite(fd, buf: Uint8Array, len, timeoutUs) -> bytes written | -errno
Napi::Value SerialWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[1].As<Napi::Uint8Array>();
  size_t len = info[2].As<Napi::Number>().Uint32Value();
  if (len > buf.ByteLength()) len = buf.ByteLength();
#ifdef __linux__
  long r = reflex::SerialWrite(info[0].As<Napi::Number>().Int32Value(), buf.Data(), len, info[3].As<Napi::Number>().Int32Value());
#else
  long r = -95;
#endif
  return Napi::Number::New(env, static_cast<double>(r));
}

// serialRead(fd, buf: Uint8Array, offset, minBytes, timeoutUs) -> bytes read | -errno
Napi::Value SerialRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[1].As<Napi::Uint8Array>();
  size_t off = info[2].As<Napi::Number>().Uint32Value();
  if (off > buf.ByteLength()) off = buf.ByteLength();
#ifdef __linux__
  long r = reflex::SerialRead(info[0].As<Napi::Number>().Int32Value(), buf.Data() + off, buf.ByteLength() - off,
                              info[3].As<Napi::Number>().Uint32Value(), info[4].As<Napi::Number>().Int32Value());
#else
  long r = -95;
#endif
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value SerialDiscardInput(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int r = reflex::SerialDiscardInput(info[0].As<Napi::Number>().Int32Value());
#else
  int r = -95;
#endif
  return Napi::Number::New(info.Env(), r);
}

// rtSetup(priority, cpu, lockMemory) -> { fifo, affinity, mlock } (errno each, 0 = done)
Napi::Value RtSetup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef __linux__
  reflex::RtResult r = reflex::SetupRealtime(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                                             info[2].As<Napi::Boolean>().Value());
  out.Set("fifo", Napi::Number::New(env, r.fifo));
  out.Set("affinity", Napi::Number::New(env, r.affinity));
  out.Set("mlock", Napi::Number::New(env, r.mlock));
#endif
  return out;
}

// keepThreadsOffCpu(cpu) -> { moved, error }: every thread of the process now kept off `cpu`.
Napi::Value KeepThreadsOffCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef __linux__
  reflex::KeepOffResult r = reflex::KeepThreadsOffCpu(info[0].As<Napi::Number>().Int32Value());
  out.Set("moved", Napi::Number::New(env, r.moved));
  out.Set("error", Napi::Number::New(env, r.error));
#else
  out.Set("moved", Napi::Number::New(env, 0));
  out.Set("error", Napi::Number::New(env, 95));
#endif
  return out;
}

Napi::Value UnlockMemory(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), reflex::UnlockMemory());
}

// sleepThenSpin(deadlineMs, spinMs, out: Float64Array): sleeps and spins to the deadline, then
// writes the wake-up time into out[0] (a double written in place: no heap number per tick).
Napi::Value SleepThenSpin(const Napi::CallbackInfo& info) {
  reflex::SleepThenSpinMs(info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Number>().DoubleValue());
  auto out = info[2].As<Napi::Float64Array>();
  if (out.ElementLength() > 0) out[0] = reflex::MonotonicMs();
  return info.Env().Undefined();
}

// clockInto(out: Float64Array, index): out[index] = CLOCK_MONOTONIC in ms, without allocating.
Napi::Value ClockInto(const Napi::CallbackInfo& info) {
  auto out = info[0].As<Napi::Float64Array>();
  uint32_t i = info[1].As<Napi::Number>().Uint32Value();
  if (i < out.ElementLength()) out[i] = reflex::MonotonicMs();
  return info.Env().Undefined();
}

// canOpen(ifname) -> fd | -errno
Napi::Value CanOpen(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int r = reflex::CanOpen(info[0].As<Napi::String>().Utf8Value().c_str());
#else
  int r = -95;
#endif
  return Napi::Number::New(info.Env(), r);
}

// canSetFilters(fd, pairs: Uint32Array [id, mask, ...]) -> 0 | -errno
Napi::Value CanSetFilters(const Napi::CallbackInfo& info) {
  auto pairs = info[1].As<Napi::Uint32Array>();
#ifdef __linux__
  int r = reflex::CanSetFilters(info[0].As<Napi::Number>().Int32Value(), pairs.Data(), pairs.ElementLength() / 2);
#else
  int r = -95;
#endif
  return Napi::Number::New(info.Env(), r);
}

// unixConnect(path) -> fd | -errno
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int r = reflex::UnixConnect(info[0].As<Napi::String>().Utf8Value().c_str());
#else
  int r = -95;
#endif
  return Napi::Number::New(info.Env(), r);
}

// closeFd(fd) -> 0 | -errno
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int r = close(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// flockExclusive(fd) -> 0 | errno: an exclusive flock without waiting (EWOULDBLOCK when another
// open file holds it). The kernel drops it when the last fd of that open file closes, so a
// process that dies, however it dies, leaves no stale lock.
Napi::Value FlockExclusive(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int r = flock(info[0].As<Napi::Number>().Int32Value(), LOCK_EX | LOCK_NB);
  int err = r == 0 ? 0 : errno;
#else
  int err = 95;
#endif
  return Napi::Number::New(info.Env(), err);
}

// peerCred(fd) -> { pid, uid, gid, groups: number[] | null } | errno: who is at the other end of
// a connected Unix socket, as the kernel recorded it at connect (SO_PEERCRED), and that
// process's supplementary groups (SO_PEERGROUPS, Linux 4.13+; null where the kernel lacks it).
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef __linux__
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Napi::Number::New(env, errno);
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
#ifdef SO_PEERGROUPS
  gid_t groups[256];
  socklen_t glen = sizeof groups;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
    size_t n = glen / sizeof(gid_t);
    Napi::Array arr = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
    out.Set("groups", arr);
  } else {
    out.Set("groups", env.Null());
  }
#else
  out.Set("groups", env.Null());
#endif
  return out;
#else
  return Napi::Number::New(env, 95);
#endif
}

// exitAfter(ms, code): a detached thread that ends the process with _exit(code) after ms,
// unless it has ended by then. process.exit() joins every worker thread first, and a worker
// stuck in a system call (a FIFO, a driver, a TensorRT build) never joins: this bounds it.
Napi::Value ExitAfter(const Napi::CallbackInfo& info) {
  int64_t ms = info[0].As<Napi::Number>().Int64Value();
  int code = info[1].As<Napi::Number>().Int32Value();
  std::thread([ms, code]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    _exit(code);
  }).detach();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("exitAfter", Napi::Function::New(env, ExitAfter));
  exports.Set("flockExclusive", Napi::Function::New(env, FlockExclusive));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("canOpen", Napi::Function::New(env, CanOpen));
  exports.Set("canSetFilters", Napi::Function::New(env, CanSetFilters));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("openPty", Napi::Function::New(env, OpenPty));
  exports.Set("ptyBaud", Napi::Function::New(env, PtyBaud));
  exports.Set("serialWrite", Napi::Function::New(env, SerialWrite));
  exports.Set("serialRead", Napi::Function::New(env, SerialRead));
  exports.Set("serialDiscardInput", Napi::Function::New(env, SerialDiscardInput));
  exports.Set("rtSetup", Napi::Function::New(env, RtSetup));
  exports.Set("unlockMemory", Napi::Function::New(env, UnlockMemory));
  exports.Set("keepThreadsOffCpu", Napi::Function::New(env, KeepThreadsOffCpu));
  exports.Set("sleepThenSpin", Napi::Function::New(env, SleepThenSpin));
  exports.Set("clockInto", Napi::Function::New(env, ClockInto));
  return exports;
}

}  // namespace

NODE_API_MODULE(reflex_native, Init)
