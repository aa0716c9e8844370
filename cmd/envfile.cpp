// secrets env, cleanup, import (issue 4): being written.
#include "cmd/command.hpp"

namespace cmd {

void add_env_commands(CLI::App&, CommandAction&)
{
}

} // namespace cmd
