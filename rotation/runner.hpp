#pragma once
// The rotation hook runner (DESIGN.md section 8): runs one `rotate_via`
// command as a subprocess and reports how it ended. It knows nothing of the
// daemon, the store or the audit log; the caller decides what the result means.
//
// Contract
// - run_hook runs `/bin/sh -c command` as the leader of a new process group
//   (posix_spawn with POSIX_SPAWN_SETPGROUP). Environment: the daemon's own
//   plus SECRET_NAME=<secret_name>. Nothing secret goes into argv or the
//   environment; the current value arrives only on stdin, which is closed once
//   written. A hook that never reads stdin is fine (EPIPE ends the write, and
//   SIGPIPE is blocked in the calling thread while run_hook runs). The child
//   starts with every signal at its default and an empty signal mask, so the
//   daemon's SIG_IGN for SIGPIPE does not leak into hooks.
// - Killing: at `timeout` the whole group gets SIGTERM; if the leader is still
//   alive `kill_grace` later, the group gets SIGKILL. When the leader exits
//   (on its own or not), stdout and stderr get up to k_drain_window to reach
//   EOF, then whatever is left of the group (grandchildren, backgrounded
//   jobs) gets SIGKILL and reading stops, so a grandchild holding a pipe open
//   cannot hold us up. Group signals are sent while the leader is still
//   unreaped, so its pid cannot have been reused as another group's id.
//   A process that leaves the group (setsid, setpgid) is out of reach.
// - The leader is always reaped (waitpid on its pid only); no zombie is left.
//   The caller must not set SIGCHLD to SIG_IGN nor reap children it did not
//   spawn (waitpid(-1)), or the exit status is lost.
// - Thread-safe: several threads may run hooks at once. Every descriptor is
//   opened O_CLOEXEC, and the child closes every fd above 2, so one hook never
//   inherits another's pipes or the daemon's sockets. Reading `environ` races
//   only with a concurrent setenv, which the daemon never does.
// - Secrets: HookResult::stdout_data is the new value. It is filled only when
//   status is ok (otherwise wiped and empty); its buffer is reserved up front
//   so no partial copy is left behind by reallocation, and the read buffer is
//   wiped. The caller owns it and wipes it (explicit_bzero) after use.
//   stdin_data is only read, never copied. stderr_tail and error never hold
//   stdout, so they may go into error messages and the audit log.
// - Errors: a failure to set up or spawn the hook is reported in-band
//   (Status::spawn_failed with `error`). An unexpected poll failure after the
//   spawn throws util::Error (Errc::io), after the group has been killed and
//   the leader reaped. std::bad_alloc may escape as usual.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace rotation {

// A new value beyond this is refused: no credential is a megabyte, and the cap
// bounds what a runaway hook can make the daemon hold.
constexpr std::size_t k_max_stdout = 1024 * 1024;
// DESIGN.md section 8: the hook's stderr, truncated to 4 KiB, goes into the
// error and the audit log. The cap includes k_truncation_mark.
constexpr std::size_t k_max_stderr = 4096;
constexpr std::string_view k_truncation_mark = "\u2026[truncated]";
// How long the pipes may stay open after the leader has exited.
constexpr std::chrono::milliseconds k_drain_window{100};

struct HookResult
{
  enum class Status {
    ok,          // the leader exited 0; stdout_data is the new value (maybe empty)
    failed,      // non-zero exit, death by a signal, or stdout over k_max_stdout
    timed_out,   // still running at the deadline; the group was killed
    spawn_failed // pipes or posix_spawn failed; nothing ran
  };

  Status status = Status::spawn_failed;
  int exit_code = -1;      // the leader's exit status if it exited; -1 otherwise
  int signal = 0;          // the signal that ended the leader; 0 if none
  std::string stdout_data; // SECRET: the new value; see the contract above
  std::string stderr_tail; // the first bytes of stderr, at most k_max_stderr, cut
                           // on a UTF-8 boundary and ending in k_truncation_mark if cut
  std::string error;       // why status is not ok, lowercase, e.g. "exited with status 3",
                           // "timed out after 30s", "output too large (over 1 MiB)"; empty if ok
  std::chrono::milliseconds elapsed{0};
};

// See the contract above. `timeout` and `kill_grace` below zero count as zero.
HookResult run_hook(const std::string& command,
                    const std::string& secret_name,
                    std::string_view stdin_data,
                    std::chrono::milliseconds timeout,
                    std::chrono::milliseconds kill_grace = std::chrono::seconds{1});

// The hook's stdout as DESIGN.md section 8 uses it: leading and trailing ASCII
// whitespace (space, tab, \r, \n) removed.
std::string trim(std::string_view s);

const char* to_string(HookResult::Status status);

} // namespace rotation
