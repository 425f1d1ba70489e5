#include "rt.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

namespace reflex {

double MonotonicMs();
int SleepUntilMs(double deadline_ms);

RtResult SetupRealtime(int priority, int cpu, bool lock_memory) {
  RtResult r;
  if (priority > 0) {
    sched_param p{};
    p.sched_priority = priority;
    r.fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &p);
  } else {
    r.fifo = EINVAL;
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    r.affinity = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  // MCL_ONFAULT: lock pages as they are touched rather than populating every mapping V8 has
  // reserved; MCL_FUTURE made V8 abort on a later mprotect (seen on Node 20).
  if (lock_memory && mlockall(MCL_CURRENT | MCL_ONFAULT) != 0) r.mlock = errno;
  return r;
}

int UnlockMemory() { return munlockall() == 0 ? 0 : errno; }

KeepOffResult KeepThreadsOffCpu(int cpu) {
  KeepOffResult r;
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    r.error = EINVAL;
    return r;
  }
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) {
    r.error = errno;
    return r;
  }
  while (dirent* e = readdir(tasks)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
    cpu_set_t set;
    CPU_ZERO(&set);
    int err = 0;
    if (sched_getaffinity(tid, sizeof(set), &set) != 0) {
      err = errno;
    } else if (CPU_ISSET(cpu, &set)) {
      CPU_CLR(cpu, &set);
      // A thread with no other CPU stays where it is: moving it nowhere would fail anyway.
      if (CPU_COUNT(&set) == 0) err = EINVAL;
      else if (sched_setaffinity(tid, sizeof(set), &set) != 0) err = errno;
      else r.moved++;
    }
    if (err != 0 && err != ESRCH && r.error == 0) r.error = err;
  }
  closedir(tasks);
  return r;
}

int SleepThenSpinMs(double deadline_ms, double spin_ms) {
  int e = 0;
  if (spin_ms < 0) spin_ms = 0;
  if (MonotonicMs() < deadline_ms - spin_ms) e = SleepUntilMs(deadline_ms - spin_ms);
  // The last stretch in C: a JS spin would read a clock that allocates on every call.
  while (MonotonicMs() < deadline_ms) {
  }
  return e;
}

int SleepUntilMs(double deadline_ms) {
  timespec ts{};
  double sec = std::floor(deadline_ms / 1000.0);
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>((deadline_ms - sec * 1000.0) * 1e6);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  for (;;) {
    int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    if (e != EINTR) return e;
  }
}

double MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace reflex
