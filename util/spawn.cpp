#include "util/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace util {

namespace {

// posix_spawn's two attribute objects, destroyed on every path.
struct SpawnAttributes
{
  SpawnAttributes()
  {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnAttributes()
  {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;

  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
};

void check(int rc)
{
  if (rc != 0) {
    throw_errno("failed to prepare posix_spawn", rc);
  }
}

} // namespace

SteadyClock::time_point saturating_add(SteadyClock::time_point t, std::chrono::milliseconds d)
{
  if (d <= std::chrono::milliseconds::zero()) {
    return t;
  }
  // Compare in milliseconds: converting a huge `d` to the clock's
  // nanoseconds would overflow.
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::time_point::max() - t);
  if (d >= room) {
    return SteadyClock::time_point::max();
  }
  return t + d;
}

UniqueFd move_at_or_above(UniqueFd fd, int lowest)
{
  if (fd.get() >= lowest) {
    return fd;
  }
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, lowest);
  if (moved < 0) {
    throw_errno("failed to move a descriptor above " + std::to_string(lowest - 1));
  }
  return UniqueFd(moved);
}

Pipe make_pipe(int lowest)
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno("failed to create a pipe");
  }
  Pipe p;
  p.read_end = move_at_or_above(UniqueFd(fds[0]), lowest);
  p.write_end = move_at_or_above(UniqueFd(fds[1]), lowest);
  return p;
}

void set_nonblocking(int fd)
{
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw_errno("failed to make a pipe non-blocking");
  }
}

void open_stdio_if_closed()
{
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) {
      continue;
    }
    // The lowest free descriptor: `fd` itself, as the ones below are open.
    const int null = ::open("/dev/null", O_RDWR);
    if (null < 0) {
      throw_errno("failed to open /dev/null for a closed standard descriptor");
    }
    if (null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

Child::Child(pid_t pid, std::chrono::milliseconds kill_grace)
  : m_pid(pid), m_kill_grace(std::max(kill_grace, std::chrono::milliseconds::zero()))
{
}

Child::Child(Child&& other) noexcept
  : m_pid(other.m_pid),
    m_kill_grace(other.m_kill_grace),
    m_reaped(other.m_reaped),
    m_killed(other.m_killed),
    m_terminate_group(other.m_terminate_group),
    m_status(other.m_status),
    m_kill_at(other.m_kill_at),
    m_kill_pipe(std::move(other.m_kill_pipe))
{
  other.m_reaped = true; // the moved-from object neither kills nor waits
}

Child::~Child()
{
  if (!m_reaped) {
    kill();
    wait();
  }
}

std::optional<int> Child::try_wait()
{
  if (m_reaped) {
    return m_status;
  }
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(m_pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != m_pid) {
    return std::nullopt;
  }
  m_reaped = true;
  m_status = status;
  return m_status;
}

int Child::wait()
{
  if (m_reaped) {
    return m_status;
  }
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(m_pid, &status, 0)) < 0 && errno == EINTR) {
  }
  m_reaped = true; // ECHILD too: there is nothing left to wait for
  m_status = r == m_pid ? status : 0;
  return m_status;
}

void Child::signal(int signo) const
{
  if (!m_reaped) {
    ::kill(m_pid, signo);
  }
}

void Child::signal_group(int signo) const
{
  // While the leader is unreaped its pid is still the group's id: no other
  // process can have been given it.
  if (!m_reaped) {
    ::kill(-m_pid, signo);
  }
}

void Child::terminate(SteadyClock::time_point now)
{
  if (terminating() || m_reaped) {
    return;
  }
  if (m_terminate_group) {
    signal_group(SIGTERM);
  } else {
    signal(SIGTERM);
  }
  m_kill_at = saturating_add(now, m_kill_grace);
}

bool Child::kill_if_due(SteadyClock::time_point now)
{
  if (!m_kill_at || now < *m_kill_at) {
    return false;
  }
  kill();
  return true;
}

void Child::kill()
{
  m_kill_at.reset();
  if (m_killed) {
    return;
  }
  m_killed = true;
  if (m_kill_pipe) {
    m_kill_pipe.reset();
  } else {
    signal_group(SIGKILL);
  }
}

Child spawn(const SpawnSpec& spec)
{
  SpawnAttributes spawn;
  int highest_target = -1;
  for (const auto& [target, source] : spec.fds) {
    highest_target = std::max(highest_target, target);
  }
  // Copies kept open until posix_spawn has run.
  std::vector<UniqueFd> moved;
  moved.reserve(spec.fds.size());
  for (const auto& [target, source] : spec.fds) {
    int from = source;
    if (from <= highest_target) {
      const int copy = ::fcntl(from, F_DUPFD_CLOEXEC, highest_target + 1);
      if (copy < 0) {
        throw_errno("failed to move a descriptor for the child");
      }
      from = moved.emplace_back(copy).get();
    }
    check(posix_spawn_file_actions_adddup2(&spawn.actions, from, target));
  }
  if (spec.close_from >= 0) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    check(posix_spawn_file_actions_addclosefrom_np(&spawn.actions, spec.close_from));
#endif
  }

  sigset_t defaults;
  sigemptyset(&defaults);
  if (spec.default_signals.empty()) {
    sigfillset(&defaults);
  }
  for (const int s : spec.default_signals) {
    sigaddset(&defaults, s);
  }
  sigset_t none;
  sigemptyset(&none);
  check(posix_spawnattr_setflags(
    &spawn.attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)));
  check(posix_spawnattr_setpgroup(&spawn.attr, 0));
  check(posix_spawnattr_setsigmask(&spawn.attr, &none));
  check(posix_spawnattr_setsigdefault(&spawn.attr, &defaults));

  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (spec.env) {
    envp.reserve(spec.env->size() + 1);
    for (const auto& e : *spec.env) {
      envp.push_back(const_cast<char*>(e.c_str())); // posix_spawn only reads them
    }
    envp.push_back(nullptr);
  }
  char* const* env = spec.env ? envp.data() : environ;

  pid_t pid = -1;
  const int rc = spec.search_path
                   ? ::posix_spawnp(&pid, spec.program.c_str(), &spawn.actions, &spawn.attr, argv.data(), env)
                   : ::posix_spawn(&pid, spec.program.c_str(), &spawn.actions, &spawn.attr, argv.data(), env);
  if (rc != 0) {
    std::string reason = ::strerror(rc);
    if (!reason.empty()) {
      reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
    }
    throw SpawnError("failed to run " + spec.program + ": " + reason, rc);
  }
  return Child(pid, spec.kill_grace);
}

} // namespace util
