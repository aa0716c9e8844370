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
  std::string audit;
  std::string config;
  std::string socket;
  std::string pid;
  std::string log;
};

Paths paths_for(const std::string& home);
// Reads AGENT_SECRETS_HOME, HOME and AGENT_SECRETS_SOCKET.
Paths default_paths();

} // namespace util
