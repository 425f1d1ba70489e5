#pragma once
#include <string>

namespace reflex {

// Sends one datagram to the systemd notification socket at `path` ("@name" is an abstract
// socket). Returns 0 or an errno value; never throws, so a missing or dead socket can never
// take the daemon down.
int SendNotify(const std::string& path, const std::string& message);

}  // namespace reflex
