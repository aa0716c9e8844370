#pragma once
// The rotation hook runner (DESIGN.md section 8): runs one `rotate_via`
// command as a subprocess and reports how it ended. Whether the command may
// run at all (hooks.json) is the caller's decision, made before. It knows nothing of the
// daemon, the store or the audit log; the caller decides what the result means.
//
// Contract
// - run_hook runs `/bin/sh -c command` under a reaper (rotation/reaper.hpp):
//   it starts /proc/self/exe with argv[0] k_reaper_argv0 through util::spawn
//   (util/spawn.hpp: a new process group, fds 0-4 and nothing else), so the
//   binary's main() must call run_reaper_if_invoked first (cmd/main.cpp and
//   the unit tests' main do). Environment: the daemon's own plus
//   SECRET_NAME=<secret_name>. Nothing secret goes into argv or the
//   environment; the current value arrives only on stdin, which is closed once
//   written. A hook that never reads stdin is fine (EPIPE ends the write, and
//   SIGPIPE is blocked in the calling thread while run_hook runs). The hook
//   starts with every signal at its default and an empty signal mask, so the
//   daemon's SIG_IGN for SIGPIPE does not leak into hooks.
// - Containment: the hook runs in a cgroup of its own (rotation/cgroup.hpp)
//   where one can be made, unless AGENT_SECRETS_HOOK_CGROUP=off (the tests'
//   way to exercise the fallback); otherwise only the reaper, a child
//   subreaper, holds its descendants. HookResult::containment says which.
// - Killing: at `timeout` every descendant of the reaper gets SIGTERM; if the
//   leader is still alive `kill_grace` later, everything is killed. When the
//   leader exits (on its own or not), stdout and stderr get up to
//   k_drain_window to reach EOF, then everything left (grandchildren,
//   background jobs, a `setsid` daemon, a double fork) is killed: cgroup.kill,
//   then SIGKILL to each descendant found in /proc until the reaper has no
//   child. run_hook returns only after the reaper has exited, so no
//   descendant outlives it, except survivors the reaper could not kill within
//   k_reaper_kill_limit (a setuid program), counted in HookResult::survivors.
//   If the daemon dies mid-hook, the reaper sees EOF on its control pipe and
//   kills the hook all the same.
// - The reaper is the only process run_hook spawns and the only one it reaps
//   (waitpid on its pid). The caller must not set SIGCHLD to SIG_IGN nor reap
//   children it did not spawn (waitpid(-1)), or the reaper's status is lost.
// - Thread-safe: several threads may run hooks at once. Every descriptor is
//   opened O_CLOEXEC, and the reaper gets only fds 0-4, so one hook never
//   inherits another's pipes or the daemon's sockets. Reading `environ` races
//   only with a concurrent setenv, which the daemon never does.
// - Secrets: HookResult::stdout_data is the new value. It is filled only when
//   status is ok (otherwise wiped and empty); its buffer is reserved up front
//   so no partial copy is left behind by reallocation, and the read buffers
//   are wiped. The caller owns it and wipes it (explicit_bzero) after use.
//   stdin_data is only read, never copied.
// - stderr_tail never holds stdin_data (the old value) nor the hook's stdout
//   (the new value, as printed and trimmed), in any form util::encoded_forms
//   knows: up to k_stderr_capture bytes are read, every form is replaced by
//   k_redaction_mark, and only then is the text cut to k_max_stderr; a cut
//   that would end inside the beginning of a form (a value longer than the
//   margin) moves back before it. error never holds either. Both may go into
//   error messages, the audit log and the daemon's log.
// - Errors: a failure to set up or spawn the hook is reported in-band
//   (Status::spawn_failed with `error`). An unexpected poll failure after the
//   spawn throws util::Error (Errc::io), after the hook has been killed and
//   the reaper reaped. std::bad_alloc may escape as usual.

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
// Read beyond k_max_stderr so that a value's form that starts before the cut
// is still whole when it is redacted (the longest form, \u00xx, is 6 bytes
// a byte: values up to 10 KiB).
constexpr std::size_t k_stderr_capture = k_max_stderr + 64 * 1024;
constexpr std::string_view k_redaction_mark = "[redacted]";
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
  std::string stderr_tail; // the first bytes of stderr, values redacted, at most k_max_stderr,
                           // cut on a UTF-8 boundary and ending in k_truncation_mark if cut
  std::string error;       // why status is not ok, lowercase, e.g. "exited with status 3",
                           // "timed out after 30s", "output too large (over 1 MiB)"; empty if ok
  std::chrono::milliseconds elapsed{0};
  const char* containment = "reaper"; // "cgroup" when the hook ran in a cgroup of its own
  std::size_t survivors = 0;          // descendants the reaper could not kill (see above)
};

enum class Containment {
  automatic,  // a cgroup where one can be made, else the reaper alone
  reaper_only // the fallback, for tests
};

// automatic, or reaper_only when AGENT_SECRETS_HOOK_CGROUP=off.
Containment containment_from_environment();

// See the contract above. `timeout` and `kill_grace` below zero count as zero.
HookResult run_hook(const std::string& command,
                    const std::string& secret_name,
                    std::string_view stdin_data,
                    std::chrono::milliseconds timeout,
                    std::chrono::milliseconds kill_grace = std::chrono::seconds{1},
                    Containment containment = containment_from_environment());

// The hook's stdout as DESIGN.md section 8 uses it: leading and trailing ASCII
// whitespace (space, tab, \r, \n) removed.
std::string trim(std::string_view s);

const char* to_string(HookResult::Status status);

} // namespace rotation
