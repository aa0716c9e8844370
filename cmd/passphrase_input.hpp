#pragma once
// Where the CLI gets a passphrase (issue 19, DESIGN.md section 11), in this
// order: `--passphrase-fd N` (read to EOF, one trailing newline stripped);
// the terminal (/dev/tty, echo off, asked twice for a new one); `pinentry` on
// PATH when there is no terminal (Assuan protocol); else an error telling how
// to pass it. Never argv, never the environment: both are readable by other
// processes of the user (/proc/PID/cmdline, /proc/PID/environ).
//
// Contract: every copy of the passphrase lives in a SecretBuffer or is wiped
// before it is freed. An empty passphrase is refused. The terminal's echo
// setting is restored on every path out, errors included.

#include "store/age/secret_buffer.hpp"

#include <optional>
#include <string_view>

namespace cmd {

// The longest passphrase accepted from any source.
inline constexpr size_t k_max_passphrase = 1024;

// Throws util::Error: invalid_params (empty, too long, mismatch, no source),
// io (a read failed), unauthorized-free "cancelled" (pinentry's ERR).
store::age::SecretBuffer read_passphrase(std::optional<int> fd, std::string_view prompt, bool confirm_new);

namespace assuan {

// One line of a server's (pinentry's) reply, without its newline.
enum class LineKind { ok, err, data, status, comment, other };
struct Line
{
  LineKind kind;
  std::string_view rest; // after "OK ", "ERR ", "D ", "S ", "#"
};
Line classify(std::string_view line);

// Appends the percent-decoded `in` (Assuan's %XX escapes) to out[at...] and
// advances `at`. Throws util::Error(invalid_params) on a bad escape or when
// `out` is full. `out` is a SecretBuffer: a D line carries the passphrase.
void percent_decode_into(std::string_view in, store::age::SecretBuffer& out, size_t& at);

// Escapes %, CR and LF for a command's argument (SETDESC and the like).
std::string percent_encode(std::string_view in);

} // namespace assuan

} // namespace cmd
