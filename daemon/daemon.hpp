#pragma once
// `secrets serve`: the per-user daemon. Runs in the foreground until SIGTERM
// or SIGINT, then writes the lease snapshot and a daemon_stop line.
//
// Throws util::Error (with a fix) when it must not start: another daemon
// running, bad permissions, a store that does not load.

#include "util/paths.hpp"

namespace server {

struct ServeOptions
{
  // Exit non-zero when the proxy cannot start, instead of serving without it.
  bool require_proxy = false;
};

void serve(const util::Paths& paths, const ServeOptions& options = {});

} // namespace server
