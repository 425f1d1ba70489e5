#include "serial_io.h"

#include <cerrno>
#include <ctime>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

namespace reflex {
namespace {

long long NowUs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
}

// Waits for `events` on fd until the absolute deadline; 1 ready, 0 timed out, -errno.
int WaitFor(int fd, short events, long long deadline_us) {
  for (;;) {
    long long left = deadline_us - NowUs();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    timespec ts{static_cast<time_t>(left / 1000000), static_cast<long>((left % 1000000) * 1000)};
    int r = ppoll(&p, 1, &ts, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return 0;
    if (p.revents & (POLLERR | POLLNVAL)) return -EIO;
    if (p.revents & POLLHUP && !(p.revents & POLLIN)) return -EIO;
    return 1;
  }
}

}  // namespace

long SerialWrite(int fd, const uint8_t* buf, size_t len, int timeout_us) {
  long long deadline = NowUs() + timeout_us;
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, buf + off, len - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return -errno;
    int w = WaitFor(fd, POLLOUT, deadline);
    if (w < 0) return w;
    if (w == 0) return static_cast<long>(off);  // output stuck: the caller sees a short write
  }
  return static_cast<long>(off);
}

long SerialRead(int fd, uint8_t* buf, size_t cap, size_t min_bytes, int timeout_us) {
  long long deadline = NowUs() + timeout_us;
  size_t got = 0;
  while (got < cap) {
    ssize_t n = read(fd, buf + got, cap - got);
    if (n > 0) {
      got += static_cast<size_t>(n);
      if (got >= min_bytes) break;
      continue;
    }
    if (n == 0) return -EIO;  // hang-up: the adapter is gone
    if (errno != EAGAIN && errno != EINTR) return -errno;
    int w = WaitFor(fd, POLLIN, deadline);
    if (w < 0) return w;
    if (w == 0) break;
  }
  return static_cast<long>(got);
}

int SerialDiscardInput(int fd) {
  return tcflush(fd, TCIFLUSH) == 0 ? 0 : -errno;
}

}  // namespace reflex
