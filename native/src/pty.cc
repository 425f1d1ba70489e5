#include "pty.h"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

namespace reflex {

PtyPair OpenRawPty() {
  PtyPair p;
  p.master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p.master < 0) {
    p.error = errno;
    return p;
  }
  char name[128];
  if (grantpt(p.master) != 0 || unlockpt(p.master) != 0 || ptsname_r(p.master, name, sizeof(name)) != 0) {
    p.error = errno;
    close(p.master);
    p.master = -1;
    return p;
  }
  p.path = name;
  p.slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p.slave < 0) {
    p.error = errno;
    close(p.master);
    p.master = -1;
    return p;
  }
  termios t{};
  if (tcgetattr(p.slave, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(p.slave, TCSANOW, &t);
  }
  return p;
}

}  // namespace reflex
