// Listening sockets. Every reactor listens on every port itself (SO_REUSEPORT), so the kernel
// spreads new connections over the cores.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace ringmail {

// Opens `count` listening sockets bound to `addr` with SO_REUSEPORT. Port 0 picks one ephemeral
// port that all of them share. Fails (with one line in *error) when another process holds the
// port, even one that also uses SO_REUSEPORT.
bool open_listeners(const ListenAddress& addr, size_t count, std::vector<int>* fds,
                    std::string* bound, std::string* error);

}  // namespace ringmail
