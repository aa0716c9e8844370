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
// The same for a file already open for reading. Reads only the comment block
// at the top, never further than the first value line.
std::optional<std::vector<std::string>> env_file_leases(int fd);

// Deletes `path` only if it is such a file, without any race on the path:
// every directory on the way is opened with O_NOFOLLOW from the root, the
// file is checked through its own descriptor, and it is unlinked relative to
// the checked directory only while that name still holds the checked inode.
// A directory swapped in (rename/RENAME_EXCHANGE) or a symlink on the way
// makes it leave the file alone. Returns what it did, for the audit line:
// "deleted: ...", "already gone", "left alone: ..." or "failed to delete: ...".
std::string delete_env_file(const std::string& path);

} // namespace rpc
