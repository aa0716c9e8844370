#pragma once
// `secrets serve`: the per-user daemon. Runs in the foreground until SIGTERM
// or SIGINT, then writes the lease snapshot and a daemon_stop line.
//
// Throws util::Error (with a fix) when it must not start: another daemon
// running, bad permissions, a store that does not load.

#include "store/age/secret_buffer.hpp"
#include "util/paths.hpp"

#include <functional>

namespace server {

struct ServeOptions
{
  // Exit non-zero when the proxy cannot start, instead of serving without it.
  bool require_proxy = false;
  // Asks for the passphrase of a protected identity.age (DESIGN.md section
  // 11), once, after the daemon has made itself non-dumpable and taken the
  // pid file, before anything else is read. Unset: a protected identity is
  // refused with a fix. The daemon never prompts by itself: the CLI decides
  // where a passphrase may come from (never argv or the environment).
  std::function<store::age::SecretBuffer()> passphrase;
};

void serve(const util::Paths& paths, const ServeOptions& options = {});

} // namespace server
