#pragma once
// The pure text functions behind `secrets env` and `secrets import`: quoting a
// value for a .env file, and parsing an existing .env. No I/O, no daemon.

#include <string>
#include <string_view>
#include <vector>

namespace cmd {

// [A-Za-z_][A-Za-z0-9_]*
bool is_valid_env_name(std::string_view name);

// Quotes `value` for a .env line `VAR=<quoted>`. The whole value goes in
// single quotes and each embedded ' becomes '\'' (close, escaped quote,
// reopen). POSIX sh (`set -a; . ./.env`) reads every byte back literally:
// spaces, $, backticks, backslashes, double quotes and newlines included, with
// no expansion. parse_dotenv below reads the same syntax back byte-exact, and
// so do python-dotenv and node's dotenv for any value without a ' in it (they
// take single-quoted text literally, newlines included); a value holding a '
// follows the shell, the reference reader.
std::string quote_env_value(std::string_view value);

struct DotenvEntry
{
  std::string key;
  std::string value;
  int line = 0; // 1-based line of the KEY
};

// Parses a .env file, in file order (duplicates kept; the caller decides).
// - blank lines and lines starting with '#' are skipped; `export KEY=...` is
//   accepted;
// - 'single quoted' is literal (and may span lines);
// - "double quoted" understands \n \r \t \" \\ \$ and \` (any other \X stays
//   as is) and may span lines;
// - quoted parts and \X escapes may be adjacent, as in the shell
//   ('it'\''s' is it's);
// - an unquoted value is trimmed and loses an inline comment (" #...").
// Throws util::Error(Errc::invalid_params) naming the line ("line 3: ...").
std::vector<DotenvEntry> parse_dotenv(std::string_view text);

} // namespace cmd
