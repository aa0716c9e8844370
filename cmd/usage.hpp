#pragma once
// What the CLI says when it is used wrongly, or asked for help: a usage error
// that names the word it did not expect (in the order it was typed) and the
// command or option that was probably meant, and the short help a person gets
// from a bare `secrets` or `secrets help`.

#include "cmd/envelope.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace cmd {

// The edit distance between two words (insertions, deletions, substitutions
// and swaps of neighbours each cost 1), for "did you mean".
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, when it is close enough to be a typo of it
// (at most 2 edits, and fewer edits than `word` has letters), or a longer
// word that starts with it; "" when none is.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// A parse error of `app` (after app.parse threw it), as an error envelope:
// "unknown command \"leas\"" with the fix "secrets lease", "unknown option
// --tll for secrets lease" with "--ttl", and CLI11's own wording otherwise.
// `typed` is argv without argv[0]: fixes are that line, corrected.
Envelope usage_error(const CLI::App& app, const CLI::ParseError& e, const std::vector<std::string>& typed);

// More than one command on a line ("secrets exec --secret k env" reads as
// `exec`, then `env`): an envelope saying so (for exec, with the `--` put in
// its place), or null when there is one.
Envelope chained_commands_error(const CLI::App& app, const std::vector<std::string>& typed);

// `word` as a POSIX shell reads it back: as is when it is plain, else quoted.
// Every command a fix suggests quotes what the user typed with it.
std::string shell_word(const std::string& word);

// The command tree of bare `secrets` (piped) and `secrets --json`, read from
// the CLI11 tree as the completion scripts are: a command or option added
// there is listed without a second place to remember it.
Envelope command_tree(CLI::App& app);

// The short help: what the tool does, the common commands, where to go next.
std::string short_help(const CLI::App& app);

} // namespace cmd
