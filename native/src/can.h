#pragma once
#include <cstddef>
#include <cstdint>

namespace reflex {

// Sockets that carry CAN frames as Linux's struct can_frame (16 bytes each), opened
// non-blocking so the control thread can send and take frames without ever waiting.
// Each returns a file descriptor, or -errno.

// A raw SocketCAN socket bound to `ifname` (can0, vcan0), receiving error frames too.
int CanOpen(const char* ifname);

// Kernel-side receive filters: pairs of (id, mask); zero pairs receive nothing but errors.
int CanSetFilters(int fd, const uint32_t* pairs, size_t count);

// A stream connection to the virtual CAN bus's Unix socket (the simulated robot serves it).
int UnixConnect(const char* path);

}  // namespace reflex
