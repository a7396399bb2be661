// Starts the reactors, one pinned thread per core, and runs until SIGTERM or SIGINT; then stops
// them gracefully (see Reactor::begin_shutdown) within config.shutdown_timeout_ms.
#pragma once

#include <string>

#include "core/config.h"
#include "core/reactor.h"

namespace ringmail {

// Checks that io_uring can be used here and has what ringmail needs. On failure returns false
// with one line that says why.
bool check_io_uring(std::string* error, bool* have_msg_ring);

// Returns the process exit code: 0 after a clean shutdown, 1 when the server could not start.
// REQUIRES: config.finish() succeeded.
int run_server(const Config& config, Protocol& protocol);

}  // namespace ringmail
