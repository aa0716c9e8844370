#pragma once
// What every CLI command file shares: the outcome type, the RPC call helper,
// and the registration functions (one per command file).

#include "cmd/envelope.hpp"
#include "rpc/client.hpp"

#include <CLI/CLI.hpp>

#include <functional>
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

// Each registers its subcommands; a subcommand's callback sets `action`.
void add_exec_command(CLI::App& app, CommandAction& action);
void add_env_commands(CLI::App& app, CommandAction& action); // env, cleanup, import

} // namespace cmd
