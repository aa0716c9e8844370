// The child of `secrets exec`: started through util::spawn, its signals
// forwarded, stopped when a lease ends, reaped (cmd/exec.hpp).
#include "cmd/exec.hpp"

#include "util/error.hpp"
#include "util/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace cmd {

namespace {

// The signals exec handles (or ignores) itself; the child gets them back at
// SIG_DFL. Any other disposition exec inherited (an ignored SIGQUIT under
// nohup or `&`) the child inherits as well.
constexpr int k_handled[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
constexpr int k_ignored[] = {SIGPIPE, SIGTTOU};

// The self-pipe: signal handlers write the signal number, the poll loop reads it.
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int signo)
{
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(signo);
  (void)!::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

// Installs the handlers and restores the old dispositions and closes the
// self-pipe, whatever happens.
class SignalGuard
{
public:
  SignalGuard()
  {
    // Above stdio: were stdout a write end of this pipe, the child's output
    // would come back to us as signals to forward.
    util::Pipe p = util::make_pipe();
    util::set_nonblocking(p.read_end.get());
    util::set_nonblocking(p.write_end.get());
    g_signal_pipe[0] = p.read_end.release();
    g_signal_pipe[1] = p.write_end.release();
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s : k_handled) {
      ::sigaction(s, &sa, &m_old[s]);
    }
    struct sigaction ign{};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    for (int s : k_ignored) {
      ::sigaction(s, &ign, &m_old[s]);
    }
  }
  ~SignalGuard()
  {
    for (int s : k_handled) {
      ::sigaction(s, &m_old[s], nullptr);
    }
    for (int s : k_ignored) {
      ::sigaction(s, &m_old[s], nullptr);
    }
    ::close(g_signal_pipe[0]);
    ::close(g_signal_pipe[1]);
    g_signal_pipe[0] = g_signal_pipe[1] = -1;
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

private:
  struct sigaction m_old[NSIG]{};
};

class Runner
{
public:
  Runner(const ExecOptions& o, std::vector<HeldLease>& held, std::chrono::milliseconds kill_grace)
    : m_o(o), m_held(held), m_kill_grace(kill_grace), m_renewal(o, held)
  {
  }

  ~Runner()
  {
    if (m_took_tty) {
      ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    }
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  int run()
  {
    // Up before the child runs: a lease that ends once the child has started
    // is always seen.
    m_watch.emplace(m_held);
    spawn();
    loop();
    if (m_ended) {
      return exit_for_reason(m_ended->reason);
    }
    const int status = m_child->status();
    if (WIFSIGNALED(status)) {
      return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
  }

private:
  void spawn()
  {
    std::optional<util::Pipe> out_pipe;
    std::optional<util::Pipe> err_pipe;
    util::SpawnSpec spec;
    spec.program = m_o.argv.front();
    spec.search_path = true;
    spec.argv = m_o.argv;
    spec.default_signals.assign(std::begin(k_handled), std::end(k_handled));
    spec.default_signals.insert(spec.default_signals.end(), std::begin(k_ignored), std::end(k_ignored));
    spec.kill_grace = m_kill_grace;
    if (!m_o.no_masking) {
      out_pipe = util::make_pipe();
      err_pipe = util::make_pipe();
      spec.fds = {{STDOUT_FILENO, out_pipe->write_end.get()}, {STDERR_FILENO, err_pipe->write_end.get()}};
    }
    std::vector<std::string> env = child_environment(m_held);
    spec.env = &env;
    try {
      m_child.emplace(util::spawn(spec));
    } catch (...) {
      for (auto& e : env) {
        util::wipe(e);
      }
      throw;
    }
    for (auto& e : env) {
      util::wipe(e);
    }
    // An interactive child reads the terminal: give it the foreground.
    if (::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) {
      m_took_tty = ::tcsetpgrp(STDIN_FILENO, m_child->pid()) == 0;
    }
    if (out_pipe) {
      m_out = MaskedStream(std::move(out_pipe->read_end), STDOUT_FILENO, "stdout", m_held);
      m_err = MaskedStream(std::move(err_pipe->read_end), STDERR_FILENO, "stderr", m_held);
    }
  }

  void stop_child(const LeaseEnded& ended)
  {
    if (m_ended || m_child->reaped()) {
      return;
    }
    m_ended = ended;
    if (ended.lease_id.empty()) {
      std::fprintf(stderr, "secrets: %s; stopped the command\n", ended.reason.c_str());
    } else {
      std::fprintf(stderr, "secrets: lease %s for %s ended (%s); stopped the command\n", ended.lease_id.c_str(),
                   ended.name.c_str(), ended.reason.c_str());
    }
    std::fflush(stderr);
    m_child->terminate();
  }

  void on_signals()
  {
    unsigned char buf[64];
    while (true) {
      const ssize_t n = ::read(g_signal_pipe[0], buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      for (ssize_t i = 0; i < n; ++i) {
        const int s = buf[i];
        if (s == SIGCHLD) {
          m_child->try_wait();
        } else {
          m_child->signal_group(s); // nothing once reaped
        }
      }
    }
  }

  // How long poll may sleep: until the kill is due, the renewal is due, or
  // (once the child has exited) half a second of quiet on its pipes.
  int poll_timeout(ExecClock::time_point now)
  {
    auto ms_until = [&](ExecClock::time_point t) {
      return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1);
    };
    if (m_child->reaped()) {
      // A grandchild that keeps the pipes open gets half a second of quiet
      // before we stop forwarding.
      return 500;
    }
    if (const auto kill_at = m_child->kill_at()) {
      return ms_until(*kill_at);
    }
    if (const auto due = m_renewal.due(); due && !m_ended) {
      return ms_until(*due);
    }
    return -1;
  }

  void loop()
  {
    if (auto e = m_watch->read()) {
      stop_child(*e);
    }
    m_child->try_wait();
    while (true) {
      const auto now = ExecClock::now();
      if (m_child->reaped() && !m_out.open() && !m_err.open()) {
        break; // done once the pipes reach EOF
      }
      m_child->kill_if_due(now);
      if (const auto due = m_renewal.due(); due && !m_ended && !m_child->reaped() && now >= *due) {
        m_renewal.renew();
        continue;
      }
      std::vector<pollfd> fds;
      fds.push_back({g_signal_pipe[0], POLLIN, 0});
      const bool watching = m_watch->fd() >= 0 && !m_child->reaped();
      if (watching) {
        fds.push_back({m_watch->fd(), POLLIN, 0});
      }
      const size_t first_stream = fds.size();
      if (m_out.open()) {
        fds.push_back({m_out.fd(), POLLIN, 0});
      }
      if (m_err.open()) {
        fds.push_back({m_err.fd(), POLLIN, 0});
      }
      const int ready = ::poll(fds.data(), fds.size(), poll_timeout(now));
      if (ready < 0) {
        if (errno == EINTR) {
          continue;
        }
        util::throw_errno("failed to wait for the command");
      }
      if (ready == 0 && m_child->reaped()) {
        m_out.close();
        m_err.close();
        break;
      }
      if (fds[0].revents != 0) {
        on_signals();
      }
      if (watching && fds[1].revents != 0) {
        if (auto e = m_watch->read()) {
          stop_child(*e);
        }
      }
      for (size_t i = first_stream; i < fds.size(); ++i) {
        if (fds[i].revents != 0) {
          (fds[i].fd == m_out.fd() ? m_out : m_err).read_some();
        }
      }
      m_out.report_leaks(m_held, m_o.on_leak);
      m_err.report_leaks(m_held, m_o.on_leak);
      m_child->try_wait();
    }
    m_child->wait(); // unreachable in practice; never leave a zombie
  }

  const ExecOptions& m_o;
  std::vector<HeldLease>& m_held;
  std::chrono::milliseconds m_kill_grace;
  Renewal m_renewal;
  std::optional<LeaseWatch> m_watch;
  std::optional<util::Child> m_child;
  MaskedStream m_out;
  MaskedStream m_err;
  bool m_took_tty = false;
  std::optional<LeaseEnded> m_ended;
};

} // namespace

int run_command(const ExecOptions& o, std::vector<HeldLease>& held, std::chrono::milliseconds kill_grace)
{
  const SignalGuard signals;
  Runner runner(o, held, kill_grace);
  return runner.run();
}

} // namespace cmd
