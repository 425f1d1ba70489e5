#include "can.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>
#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/raw.h>

namespace reflex {

int CanOpen(const char* ifname) {
  if (std::strlen(ifname) >= IFNAMSIZ) return -ENAMETOOLONG;
  int fd = socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
  if (fd < 0) return -errno;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  // Bus-off, error-passive and restarts arrive as error frames: the driver tracks the state
  // from them instead of asking over netlink in the tick.
  can_err_mask_t errs = CAN_ERR_TX_TIMEOUT | CAN_ERR_CRTL | CAN_ERR_BUSOFF | CAN_ERR_BUSERROR | CAN_ERR_RESTARTED;
  if (setsockopt(fd, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &errs, sizeof(errs)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  sockaddr_can addr{};
  addr.can_family = AF_CAN;
  addr.can_ifindex = ifr.ifr_ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int CanSetFilters(int fd, const uint32_t* pairs, size_t count) {
  std::vector<can_filter> f(count);
  for (size_t i = 0; i < count; i++) {
    f[i].can_id = pairs[2 * i];
    f[i].can_mask = pairs[2 * i + 1];
  }
  // No filters at all means "receive everything": the kernel's default when none are set.
  int r = count == 0 ? setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FILTER, nullptr, 0)
                     : setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FILTER, f.data(), static_cast<socklen_t>(count * sizeof(can_filter)));
  if (count == 0 && r == 0) {
    can_filter all{0, 0};
    r = setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FILTER, &all, sizeof(all));
  }
  return r < 0 ? -errno : 0;
}

int UnixConnect(const char* path) {
  sockaddr_un addr{};
  if (std::strlen(path) >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  // Connect blocking (a local socket answers at once), then go non-blocking for the loop.
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

}  // namespace reflex
