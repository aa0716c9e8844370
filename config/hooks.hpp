#pragma once
// hooks.json (DESIGN.md section 16): the user's allowlist of rotation hooks.
//   {"version":1,"hooks":{"SECRET_NAME":"the exact rotate_via command"}}
// A secret's rotate_via runs only when it equals the entry for its name. Any
// socket client can record a rotate_via (secrets.add, as the Go CLI does);
// only the user's own CLI, writing this file directly and never over RPC,
// decides what runs.
//
// Contract
// - load_hooks (the daemon, at every rotation, so no cached copy can be
//   stale) throws util::Error:
//   Errc::unauthorized: a home directory not owned by us or accessible by
//   group or others; a hooks.json that is a symlink (opened O_NOFOLLOW), not
//   a regular file, not owned by us, or accessible by group or others
//   (checked with fstat on the opened descriptor, so a swap between a check
//   and the read does not matter);
//   Errc::invalid_params: bigger than k_max_hooks_file, or invalid (unknown
//   or duplicate keys, a version other than 1, a name or command that is not
//   a non-empty string);
//   Errc::io: the file cannot be read.
//   Every error names the path and carries a fix. A missing hooks.json is an
//   empty allowlist.
// - allow_hook / remove_hook (the CLI) read the file with the same checks,
//   change one entry and replace the file atomically (util::AtomicFile, 0600)
//   while holding an exclusive flock on the home directory, so two CLIs at
//   once do not lose an entry. They create the home (0700) if missing and
//   throw what load_hooks throws, and Errc::invalid_params for an empty name
//   or command.
// - Names are not checked against the store: the CLI checks their form, and
//   an entry for a secret that does not exist allows nothing.
// Any thread; no state.

#include "util/paths.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>

namespace config {

// Far above any real list; bounds what a planted file makes the daemon read.
constexpr std::size_t k_max_hooks_file = 1024 * 1024;

struct Hooks
{
  std::map<std::string, std::string> commands; // secret name -> command

  // The allowlisted command for `name`, if any.
  const std::string* find(const std::string& name) const;
  bool operator==(const Hooks&) const = default;
};

std::string hooks_path(const util::Paths& paths);

// Parses the text of a hooks.json; `source_path` names it in errors.
Hooks parse_hooks(std::string_view text, const std::string& source_path);
// The file's text, as allow_hook writes it (sorted, two-space indent).
std::string hooks_to_text(const Hooks& hooks);

Hooks load_hooks(const util::Paths& paths);

// Sets the entry for `name`; returns the command it replaced, if any.
std::optional<std::string> allow_hook(const util::Paths& paths, const std::string& name, const std::string& command);
// Removes the entry for `name`; returns the command it had, or nullopt if there was none.
std::optional<std::string> remove_hook(const util::Paths& paths, const std::string& name);

// `command` quoted for a POSIX shell ('...' with ' as '\''), for fixes the
// user copies: secrets hook allow NAME '<command>'.
std::string shell_quote(const std::string& command);

} // namespace config
