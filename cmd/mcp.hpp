#pragma once
// `secrets mcp`: a Model Context Protocol server on stdio, a client of the
// daemon like every other command.

#include "cmd/command.hpp"

namespace cmd {

void add_mcp_command(CLI::App& app, CommandAction& action);

} // namespace cmd
