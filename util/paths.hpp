#pragma once
// Where the files of DESIGN.md section 2 live. AGENT_SECRETS_HOME overrides
// ~/.agent-secrets; AGENT_SECRETS_SOCKET overrides the socket path.

#include <string>

namespace util {

struct Paths
{
  std::string home;
  std::string identity;
  std::string secrets;
  std::string leases;
  std::string state; // state.json: our lease state beside Go's leases.json
  std::string anchor; // audit.anchor: the audit chain's last anchored head (audit/anchor.hpp)
  std::string audit;
  std::string config;
  std::string socket;
  std::string pid;
  std::string log;
};

Paths paths_for(const std::string& home);
// Reads AGENT_SECRETS_HOME, HOME and AGENT_SECRETS_SOCKET.
Paths default_paths();

// Refuses (util::Error, Errc::io, with the chmod/chown/cp that fixes it) a
// home that is not ours or is group/other-accessible, and any of its files
// that is a symbolic link, not ours, or group/other-accessible. Absent files
// are fine. The daemon runs this before it opens, creates or truncates
// anything in the home (daemon.pid and daemon.log included): a planted
// symlink would send those writes to a file of the attacker's choosing.
void check_home(const Paths& paths);

} // namespace util
