#pragma once
#include <cstddef>
#include <cstdint>

namespace reflex {

// Synchronous serial I/O for the control thread: a tick writes its request and waits for the
// replies right there, with a deadline, without an event loop and without allocating.
// Both return a byte count, or -errno.
long SerialWrite(int fd, const uint8_t* buf, size_t len, int timeout_us);
long SerialRead(int fd, uint8_t* buf, size_t cap, size_t min_bytes, int timeout_us);
int SerialDiscardInput(int fd);

}  // namespace reflex
