// Kept apart from pty.cc: <asm/termbits.h> (termios2, arbitrary baud rates) and glibc's
// <termios.h> cannot be included in one translation unit.
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <cerrno>
#include <sys/ioctl.h>

namespace reflex {

// The baud rate the slave side of a pty was set to, read through the master (Linux answers
// TCGETS2 on a pty master with the slave's settings). -errno on failure.
long PtyBaud(int master_fd) {
  struct termios2 t {};
  if (ioctl(master_fd, TCGETS2, &t) != 0) return -errno;
  return static_cast<long>(t.c_ospeed);
}

}  // namespace reflex
