#pragma once
// `secrets serve`: the per-user daemon. Runs in the foreground until SIGTERM
// or SIGINT, then writes the lease snapshot and a daemon_stop line.
//
// Throws util::Error (with a fix) when it must not start: another daemon
// running, bad permissions, a store that does not load.

#include "util/paths.hpp"

namespace server {

void serve(const util::Paths& paths);

} // namespace server
