#include "rotation/reaper.hpp"

#include "util/file.hpp"
#include "util/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace rotation {

namespace {

using Clock = std::chrono::steady_clock;

// How long one round of the kill loop waits for a SIGCHLD before looking again.
constexpr int k_kill_round_ms = 20;

// Best effort: run_hook may have stopped listening, and then nobody needs it.
void report(const std::string& line)
{
  const std::string text = line + "\n";
  while (::write(k_reaper_status_fd, text.data(), text.size()) < 0 && errno == EINTR) {
  }
}

struct ProcessEntry
{
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_time = 0;
};

// "PID (comm) S PPID ... field 22: start time"; comm may hold anything, so
// fields are counted after the last ')'.
std::optional<ProcessEntry> parse_stat(pid_t pid, const std::string& stat)
{
  const auto close = stat.rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  std::vector<std::string_view> fields; // fields[0] is field 3 (state)
  std::string_view rest(stat);
  rest.remove_prefix(close + 1);
  while (!rest.empty() && fields.size() < 20) {
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    const auto end = rest.find(' ');
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (fields.size() < 20) {
    return std::nullopt;
  }
  ProcessEntry e;
  e.pid = pid;
  const auto ppid = fields[1];
  const auto start = fields[19];
  if (std::from_chars(ppid.data(), ppid.data() + ppid.size(), e.ppid).ec != std::errc{}
      || std::from_chars(start.data(), start.data() + start.size(), e.start_time).ec != std::errc{}) {
    return std::nullopt;
  }
  return e;
}

// Every process below `root`, found through the parent links in /proc: also
// those that left the hook's process group or session.
std::vector<ProcessEntry> descendants_of(pid_t root)
{
  std::multimap<pid_t, ProcessEntry> by_parent;
  if (DIR* dir = ::opendir("/proc")) {
    while (const dirent* entry = ::readdir(dir)) {
      pid_t pid = 0;
      const std::string_view name(entry->d_name);
      if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc{} || pid <= 0) {
        continue;
      }
      std::string stat;
      try {
        auto text = util::read_file_if_exists("/proc/" + std::string(name) + "/stat");
        if (!text) {
          continue;
        }
        stat = std::move(*text);
      } catch (const std::exception&) {
        continue; // it exited while we read
      }
      if (auto e = parse_stat(pid, stat)) {
        by_parent.emplace(e->ppid, *e);
      }
    }
    ::closedir(dir);
  }
  std::vector<ProcessEntry> found;
  std::vector<pid_t> parents{root};
  while (!parents.empty()) {
    const pid_t parent = parents.back();
    parents.pop_back();
    const auto [first, last] = by_parent.equal_range(parent);
    for (auto it = first; it != last; ++it) {
      found.push_back(it->second);
      parents.push_back(it->second.pid);
    }
  }
  return found;
}

// Signals each process through a pidfd opened only if its start time still
// matches what /proc said: a pid reused since the scan is never signalled.
void signal_descendants(int signo)
{
  for (const auto& p : descendants_of(::getpid())) {
    util::UniqueFd fd;
    try {
      fd = util::open_process(p.pid, p.start_time);
    } catch (const std::exception&) {
      continue; // no pidfd_open: the cgroup or the next round's orphans must do
    }
    if (fd) {
      ::syscall(SYS_pidfd_send_signal, fd.get(), signo, nullptr, 0);
    }
  }
}

class Reaper
{
public:
  Reaper(std::string cgroup_dir, std::string command)
    : m_cgroup_dir(std::move(cgroup_dir)), m_command(std::move(command))
  {
  }

  int run()
  {
    // A report written after run_hook stopped reading must not kill us
    // before the hook's processes are dead.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &handled, nullptr);
    m_signals.reset(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
    ::fcntl(k_reaper_status_fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(k_reaper_control_fd, F_SETFD, FD_CLOEXEC);
    // Without it the cgroup still holds everything; only the fallback weakens.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if (!m_signals) {
      report(std::string("spawn_failed failed to create a signalfd: ") + ::strerrordesc_np(errno));
      return 1;
    }

    m_leader = ::fork();
    if (m_leader == 0) {
      run_leader();
    }
    if (m_leader < 0) {
      report(std::string("spawn_failed failed to fork: ") + ::strerrordesc_np(errno));
      return 1;
    }
    // The hook's pipes are the hook's: EOF must come when its processes close them.
    util::UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    for (int fd = 0; fd <= 2 && null; ++fd) {
      ::dup2(null.get(), fd);
    }

    wait_for_control_eof();
    kill_everything();
    if (!m_cgroup_dir.empty()) {
      // Empty now. run_hook removes it too; this is for a daemon that died.
      ::rmdir(m_cgroup_dir.c_str());
    }
    return 0;
  }

private:
  [[noreturn]] void run_leader()
  {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);
    if (!m_cgroup_dir.empty()) {
      // Before the first line of the hook runs: nothing it starts is outside.
      util::UniqueFd procs(::open((m_cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
      if (procs && ::write(procs.get(), "0", 1) == 1) {
        report("joined");
      }
    }
    std::string sh = "sh";
    std::string dash_c = "-c";
    char* argv[] = {sh.data(), dash_c.data(), m_command.data(), nullptr};
    ::execve("/bin/sh", argv, environ);
    report(std::string("spawn_failed failed to run /bin/sh: ") + ::strerrordesc_np(errno));
    ::_exit(127);
  }

  // Reaps every child that has exited; false once there is no child at all.
  bool reap()
  {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid == 0) {
        return true;
      }
      if (pid < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errno != ECHILD;
      }
      if (pid == m_leader) {
        m_leader_done = true;
        report("exited " + std::to_string(status));
      }
    }
  }

  // Reads what the signalfd holds: SIGCHLD reaps, SIGTERM passes on.
  void drain_signals()
  {
    signalfd_siginfo info;
    bool child = false;
    bool term = false;
    while (::read(m_signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      child = child || info.ssi_signo == SIGCHLD;
      term = term || info.ssi_signo == SIGTERM;
    }
    if (child) {
      reap();
    }
    if (term && !m_leader_done) {
      signal_descendants(SIGTERM);
    }
  }

  void wait_for_control_eof()
  {
    for (;;) {
      pollfd fds[2] = {{m_signals.get(), POLLIN, 0}, {k_reaper_control_fd, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      if (fds[0].revents != 0) {
        drain_signals();
      }
      if (fds[1].revents != 0) {
        char byte[64];
        const ssize_t r = ::read(k_reaper_control_fd, byte, sizeof byte);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
          return;
        }
      }
    }
  }

  void kill_everything()
  {
    if (!m_cgroup_dir.empty()) {
      // Atomic and complete for whatever joined the cgroup; the loop below
      // still reaps, and catches what never joined.
      util::UniqueFd kill_file(::open((m_cgroup_dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
      if (kill_file) {
        [[maybe_unused]] const auto w = ::write(kill_file.get(), "1", 1);
      }
    }
    const auto give_up = Clock::now() + k_reaper_kill_limit;
    while (reap()) {
      signal_descendants(SIGKILL);
      if (Clock::now() >= give_up) {
        reap();
        const auto left = descendants_of(::getpid()).size();
        if (left != 0) {
          report("survivors " + std::to_string(left));
        }
        return;
      }
      pollfd fd{m_signals.get(), POLLIN, 0};
      if (::poll(&fd, 1, k_kill_round_ms) > 0) {
        signalfd_siginfo info;
        while (::read(m_signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        }
      }
    }
  }

  std::string m_cgroup_dir;
  std::string m_command;
  util::UniqueFd m_signals;
  pid_t m_leader = -1;
  bool m_leader_done = false;
};

} // namespace

std::optional<int> run_reaper_if_invoked(int argc, char** argv)
{
  if (argc != 3 || argv[0] == nullptr || std::string_view(argv[0]) != k_reaper_argv0) {
    return std::nullopt;
  }
  return Reaper(argv[1], argv[2]).run();
}

} // namespace rotation
