#pragma once

namespace reflex {

struct RtResult {
  int fifo = 0;      // errno of SCHED_FIFO for the calling thread, 0 when set
  int affinity = 0;  // errno of pinning the calling thread to a CPU, 0 when set (or not asked)
  int mlock = 0;     // errno of mlockall, 0 when locked (or not asked)
};

// Real-time set-up for the calling thread only: V8's GC threads, libuv's pool and ONNX
// Runtime's pool keep their ordinary priority. mlockall is process-wide by nature.
RtResult SetupRealtime(int priority, int cpu, bool lock_memory);

// Every thread the process has now is kept off `cpu` (each keeps its other CPUs); threads they
// start and processes they spawn inherit that. With the control thread then pinned to `cpu`,
// nothing else of reflex (V8's GC, ONNX Runtime's pool, the recorder's ffmpeg) runs there.
struct KeepOffResult {
  int moved = 0;  // threads whose affinity changed
  int error = 0;  // errno of the first thread that could not be moved (threads that ended meanwhile aside)
};
KeepOffResult KeepThreadsOffCpu(int cpu);

// munlockall: V8 aborts while tearing down a heap whose pages are locked (its mprotect to
// no-access fails), so memory is unlocked before the process exits.
int UnlockMemory();

// Sleeps until an absolute CLOCK_MONOTONIC time in milliseconds (clock_nanosleep,
// TIMER_ABSTIME): no drift from computing a relative delay. 0 or errno.
int SleepUntilMs(double deadline_ms);

double MonotonicMs();

// Sleeps until `spin_ms` before the deadline, then spins to it: the wake-up jitter of a sleep
// without its lateness. 0 or errno.
int SleepThenSpinMs(double deadline_ms, double spin_ms);

}  // namespace reflex
