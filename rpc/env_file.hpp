#pragma once
// The .env files `secrets env` writes, as the daemon and `secrets cleanup` read
// them: the header line, then one "# lease <id> <name> expires <time>" comment
// per lease, then the values.

#include <optional>
#include <string>
#include <vector>

namespace rpc {

// The first line of every such file. Only files that start with it are ever deleted.
constexpr const char* k_env_file_header = "# written by secrets env (agent-secrets)";

// The lease ids the file names, or nullopt when it is not a regular file of
// this user's starting with the header (a symlink is never followed).
std::optional<std::vector<std::string>> env_file_leases(const std::string& path);

} // namespace rpc
