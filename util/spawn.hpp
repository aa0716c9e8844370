#pragma once
// Running a child process: the one way the daemon starts a rotation hook's
// reaper (rotation/runner.cpp) and `secrets exec` starts its command
// (cmd/exec_runner.cpp).
//
// Contract
// - spawn() is posix_spawn (posix_spawnp with search_path), its attribute
//   and file-action objects held with RAII. The child leads a new process
//   group, starts with an empty signal mask and with SpawnSpec::default_signals
//   (every signal when that is empty) at SIG_DFL, and gets SpawnSpec::fds by
//   dup2, in order. A source descriptor that a dup2 onto a lower target could
//   overwrite (any source at or below the highest target) is first copied
//   above every target, so the order of the list never matters, and dup2
//   always clears O_CLOEXEC on the target. Everything else the caller holds
//   is inherited unless it is O_CLOEXEC or SpawnSpec::close_from covers it.
// - The environment is the caller's strings, not copied (it may carry secret
//   values; the caller wipes them). argv is copied and must not be secret.
// - make_pipe() makes both ends O_CLOEXEC and at or above `lowest` (3 by
//   default: never stdin, stdout or stderr, where a process started with its
//   stdio closed would otherwise find them).
// - open_stdio_if_closed() puts /dev/null on each of fds 0-2 that is closed,
//   so nothing opened later lands there: call it before opening anything in
//   a process that writes to stdout or stderr for a long time.
// - Child is the spawned process. terminate() sends SIGTERM to its process
//   group (to the child alone after terminate_child_only()) and arms the
//   kill, which kill_if_due() carries out kill_grace later (the grace is the
//   caller's: a test sets a short one). The kill is SIGKILL to the group, or
//   closing the pipe given to kill_by_closing(), for a child that kills its
//   own descendants when that pipe ends (the hook's reaper).
//   No signal is sent once the child is reaped, so its pid is never someone
//   else's. An unreaped Child's destructor kills it and reaps it.
// - Threads: a Child belongs to one thread. spawn() and make_pipe() may run
//   on several threads at once (every descriptor is O_CLOEXEC from birth).
//   The caller must not reap children it did not spawn (waitpid(-1)) nor set
//   SIGCHLD to SIG_IGN, or a Child's status is lost.
// - Errors: util::Error (Errc::io) for pipes and spawn set-up; SpawnError
//   when posix_spawn itself fails (the program is missing, not executable...).

#include "util/error.hpp"
#include "util/file.hpp"

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace util {

using SteadyClock = std::chrono::steady_clock;

// t + d, clamped to the clock's maximum; d below zero counts as zero.
SteadyClock::time_point saturating_add(SteadyClock::time_point t, std::chrono::milliseconds d);

struct Pipe
{
  UniqueFd read_end;
  UniqueFd write_end;
};

// Both ends O_CLOEXEC, at or above `lowest`. Throws util::Error.
Pipe make_pipe(int lowest = 3);
// `fd` itself when it is at or above `lowest`, else an O_CLOEXEC copy there
// (and `fd` is closed). Throws util::Error.
UniqueFd move_at_or_above(UniqueFd fd, int lowest);
void set_nonblocking(int fd);
void open_stdio_if_closed();

class SpawnError : public Error
{
public:
  SpawnError(const std::string& message, int error_number)
    : Error(Errc::io, message), m_error_number(error_number)
  {
  }
  int error_number() const { return m_error_number; }

private:
  int m_error_number;
};

struct SpawnSpec
{
  std::string program; // a path; with search_path, a name looked up in our PATH
  bool search_path = false;
  std::vector<std::string> argv; // argv[0] included
  const std::vector<std::string>* env = nullptr; // "KEY=value"; nullptr: ours (environ)
  std::vector<std::pair<int, int>> fds;          // {descriptor in the child, ours}
  int close_from = -1; // the child closes every descriptor >= this (glibc 2.34+); -1: none
  std::vector<int> default_signals; // at SIG_DFL in the child; empty: every signal
  std::chrono::milliseconds kill_grace{5000}; // between terminate() and the kill
};

class Child
{
public:
  Child(pid_t pid, std::chrono::milliseconds kill_grace);
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return m_pid; }
  bool reaped() const { return m_reaped; }
  // The wait status; meaningful once reaped.
  int status() const { return m_status; }

  // Reaps the child if it has exited; its wait status then, else nullopt.
  std::optional<int> try_wait();
  // Blocks until the child has exited; its wait status.
  int wait();

  // To the child, or to its process group; nothing once reaped.
  void signal(int signo) const;
  void signal_group(int signo) const;

  // Once: SIGTERM to the group, and the kill armed for kill_grace later.
  void terminate(SteadyClock::time_point now = SteadyClock::now());
  bool terminating() const { return m_kill_at.has_value() || m_killed; }
  // When the armed kill is due; nullopt when none is pending.
  std::optional<SteadyClock::time_point> kill_at() const { return m_kill_at; }
  // Carries out the armed kill if it is due; true if it did.
  bool kill_if_due(SteadyClock::time_point now);
  // The kill, now, once.
  void kill();
  // The kill becomes closing `fd` instead of SIGKILL to the group.
  void kill_by_closing(UniqueFd fd) { m_kill_pipe = std::move(fd); }
  // terminate()'s SIGTERM goes to the child alone, for a child that passes
  // it on to its descendants itself (the hook's reaper: its group may still
  // hold a descendant that has not yet left it).
  void terminate_child_only() { m_terminate_group = false; }

private:
  pid_t m_pid = -1;
  std::chrono::milliseconds m_kill_grace;
  bool m_reaped = false;
  bool m_killed = false;
  bool m_terminate_group = true;
  int m_status = 0;
  std::optional<SteadyClock::time_point> m_kill_at;
  UniqueFd m_kill_pipe;
};

// See the contract above. Throws util::Error or SpawnError.
Child spawn(const SpawnSpec& spec);

} // namespace util
