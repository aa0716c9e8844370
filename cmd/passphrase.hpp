#pragma once
// `secrets passphrase set|change|remove`, `secrets unlock`, `secrets lock`
// (cmd/passphrase.cpp).

#include "cmd/command.hpp"

namespace cmd {

void add_passphrase_commands(CLI::App& app, CommandAction& action);

} // namespace cmd
