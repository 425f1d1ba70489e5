#pragma once
#include <string>

namespace reflex {

struct PtyPair {
  int master = -1;
  int slave = -1;  // kept open by the owner so the master never sees a hang-up between clients
  std::string path;
  int error = 0;
};

// Opens a pseudo-terminal pair with the slave side in raw mode (no echo, no line discipline),
// the way a USB serial adapter behaves. Used by the simulated servo bus.
PtyPair OpenRawPty();

// The baud rate a client set on the slave side, read through the master; -errno on failure.
long PtyBaud(int master_fd);

}  // namespace reflex
