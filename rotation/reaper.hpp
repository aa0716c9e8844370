#pragma once
// The reaper: the process between the daemon and a rotation hook, which makes
// sure that none of the hook's descendants outlives it (DESIGN.md section 8).
//
// Why a process of its own: a child subreaper (PR_SET_CHILD_SUBREAPER) is a
// property of the whole process. Were the daemon the subreaper, every orphan
// of every hook (up to 4 run at once) would become the daemon's child, and
// the daemon would have to reap children it did not spawn, with no way to
// tell whose they are. So run_hook spawns this binary again (/proc/self/exe,
// a fresh image that holds no secret of the daemon's memory), with argv[0]
// k_reaper_argv0; main() hands it to run_reaper_if_invoked. The reaper is
// single-threaded, so it may fork freely.
//
// The reaper
// - is a child subreaper, so every orphaned descendant of the hook becomes
//   its child, wherever it was (setsid, double fork);
// - forks the leader: its own process group, an empty signal mask, default
//   dispositions; when run_hook made a cgroup for the hook, the leader moves
//   itself into it (cgroup.procs) before it runs a line of the hook, and
//   says "joined"; then it executes /bin/sh -c COMMAND with the reaper's own
//   environment and stdin/stdout/stderr;
// - on SIGTERM (run_hook's timeout): sends SIGTERM to every descendant;
// - reports on k_reaper_status_fd, one line each: "joined",
//   "spawn_failed <reason>", "exited <wait status>" when it reaps the leader,
//   and "survivors <n>" at the end if some descendants could not be killed;
// - at EOF on k_reaper_control_fd (run_hook closed it, or the daemon died):
//   writes 1 to the cgroup's cgroup.kill if there is one, then sends SIGKILL
//   to every descendant it finds in /proc (through a pidfd checked against
//   the start time, so a reused pid is never hit) and reaps, until it has no
//   child left: as a subreaper with no child, it has no descendant left. It
//   gives up after k_reaper_kill_limit (a process in another uid after a
//   setuid exec, or stuck in the kernel) and reports the survivors.
// - removes the hook's cgroup (empty by then; run_hook does too, but the
//   daemon may have died), and exits 0 (1 when it could not fork). Its only child is the leader and the
//   orphans it inherits; the daemon reaps only the reaper.

#include <chrono>
#include <optional>
#include <string_view>

namespace rotation {

constexpr std::string_view k_reaper_argv0 = "agent-secrets-hook-reaper";
// The reaper's descriptors besides the hook's stdin, stdout and stderr (0-2).
constexpr int k_reaper_status_fd = 3;  // reaper -> run_hook: the lines above
constexpr int k_reaper_control_fd = 4; // run_hook -> reaper: EOF ends the hook
constexpr std::chrono::seconds k_reaper_kill_limit{5};

// When argv is a reaper's (argv[0] == k_reaper_argv0, then the cgroup
// directory or "", then the command), runs it and returns its exit code;
// otherwise nullopt. Called first thing in main(), before any thread starts.
std::optional<int> run_reaper_if_invoked(int argc, char** argv);

} // namespace rotation
