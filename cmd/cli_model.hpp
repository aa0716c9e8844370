#pragma once
// The CLI11 command tree read as data, for everything generated from it: the
// completion scripts (completion.cpp), the man page (man.cpp), and the
// command list of bare `secrets` and `secrets --json` (usage.cpp). A command
// or option added to the tree shows up in all of them without a second
// place to remember it; hidden ones (CLI11's group "") in none.

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cmd {

// What an option takes: nothing (a flag), a value, or a path.
enum class Value { none, any, file };

struct Opt
{
  std::vector<std::string> names; // "--ttl", "-o"
  std::string description;
  Value value = Value::none;
  std::string placeholder; // "TTL" when it takes a value, else ""
};

// A top-level command, as the completion scripts see it.
struct Cmd
{
  std::vector<std::string> names; // the name, then its aliases
  std::string description;
  std::vector<Opt> options;
  std::string positional; // "name", "file", "command" or ""
};

// A positional argument: "NAME" and "secret name".
struct Arg
{
  std::string placeholder;
  std::string description;
};

// A command that runs something (nested ones such as `hook allow` included,
// `hook` itself not), as the command list and the man page see it.
struct Leaf
{
  std::string path;                 // "secrets hook allow"
  std::vector<std::string> aliases; // "delete" for remove
  std::string usage;                // the path, its positionals, then its options
  std::string description;
  std::vector<Arg> arguments;
  std::vector<Opt> options; // without -h/--help
};

// CLI11 hides options and subcommands whose group is "".
bool visible(const std::string& group);

// The visible named options of `app` (--help included), in the order added.
std::vector<Opt> options_of(const CLI::App& app);

// The visible commands directly under `app`.
std::vector<Cmd> command_model(CLI::App& app);

// Every visible command under `app` that has no subcommands of its own,
// depth first in the order added, with paths that start with `prefix`.
std::vector<Leaf> leaf_commands(CLI::App& app, const std::string& prefix = "secrets");

} // namespace cmd
