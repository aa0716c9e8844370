// secrets exec (issue 4): being written.
#include "cmd/command.hpp"

namespace cmd {

void add_exec_command(CLI::App&, CommandAction&)
{
}

} // namespace cmd
