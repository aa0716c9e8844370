#pragma once
// What every CLI command file shares: the outcome type, the RPC call helper,
// and the registration functions (one per command file).

#include "cmd/envelope.hpp"
#include "rpc/client.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>

namespace cmd {

// A command's outcome: run() prints the envelope (none for a raw lease or a
// command that printed its own output) and exits with `exit`.
struct Outcome
{
  Envelope envelope;
  int exit = exit_code::ok;
};

using CommandAction = std::function<Outcome()>;

// One request on a fresh connection to the daemon's socket (from config.json
// or AGENT_SECRETS_SOCKET).
json call(const std::string& method, const json& params = json::object());
// The socket path the CLI uses.
std::string socket_path();

// Adds bind_pid and bind_start to secrets.lease params for --bind: "parent"
// (the process that ran us), "self", "none", or a pid. The start time is read
// while the process is known to be alive, so a reused pid is never bound.
// Throws util::Error(invalid_params) for anything else or a process that is gone.
void add_binding(json& params, const std::string& bind);

// Each registers its subcommands; a subcommand's callback sets `action`.
void add_exec_command(CLI::App& app, CommandAction& action);
void add_env_commands(CLI::App& app, CommandAction& action); // env, cleanup
void add_import_command(CLI::App& app, CommandAction& action); // import FILE.env
void add_openclaw_resolve_command(CLI::App& app, CommandAction& action);
void add_completion_command(CLI::App& app, CommandAction& action); // bash|zsh|fish, from the whole tree
void add_man_command(CLI::App& app, CommandAction& action);        // hidden: secrets(1) in roff, from the whole tree
void add_version_commands(CLI::App& app, CommandAction& action);    // versions, rollback
void add_hook_commands(CLI::App& app, CommandAction& action);      // hook allow|remove|list (hooks.json), set-hook
void add_leases_command(CLI::App& app, CommandAction& action);     // leases: the live ones, over secrets.leases

// For `add --rotate-via`: the `secrets hook allow` to run when hooks.json does
// not already allow `rotate_via` for `name`; nullopt when it does (or no hook).
std::optional<Action> hook_hint(const std::string& name, const std::string& rotate_via);
void add_audit_command(CLI::App& app, CommandAction& action);      // --tail (streamed), --verify [--offline]

} // namespace cmd
