// secrets exec [--ttl D] [--client-id ID] [--no-masking] [--file F]
//              [--renew [--max-lifetime D]] [--on-leak warn|revoke|rotate]
//              [--secret NAME[=VAR]]... -- CMD ARGS...
//
// Leases every listed secret, runs CMD in its own process group with the
// values in its environment (never in argv, never on disk), and:
// - masks the values in its stdout and stderr (cmd/mask.hpp) unless
//   --no-masking, in which case the child inherits our stdout and stderr;
// - forwards SIGINT, SIGTERM and SIGHUP to the child's process group;
// - holds a secrets.watch connection: when a lease ends (or the connection
//   drops) it sends SIGTERM to the group, SIGKILL 5 s later, and says why on
//   stderr;
// - binds its leases to itself (they end if exec dies, even by SIGKILL);
// - with --renew, renews them at two thirds of their TTL, up to --max-lifetime;
// - reports a leased value seen in the output (concealed) as a leak, once per
//   lease; the daemon audits it and, per --on-leak, revokes or rotates;
// - revokes its leases when the child ends (best effort).
//
// Exit codes: the child's status, or 128+signal when it was killed by a
// signal. When exec stopped the child itself because a lease ended: 5 (denied)
// if the lease was revoked, killswitched or its secret deleted; 1 if it
// expired or the watch connection to the daemon was lost. Before spawning: 4
// when a listed secret is missing (nothing runs), 3 daemon down, 2 usage,
// 127 when CMD is not found, 126 when it cannot be executed. exec prints no
// envelope on success; errors before spawning print the error envelope on
// stderr (stdout belongs to the child).
#include "cmd/command.hpp"
#include "cmd/mask.hpp"
#include "cmd/project.hpp"
#include "util/error.hpp"
#include "util/duration.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h> // explicit_bzero
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace cmd {

namespace {

constexpr const char* k_command = "secrets exec";
constexpr auto k_kill_grace = std::chrono::seconds{5};
using Clock = std::chrono::steady_clock;

struct ExecOptions
{
  std::string ttl;
  std::string client_id;
  std::string file;
  std::vector<std::string> secrets;
  std::vector<std::string> argv;
  bool no_masking = false;
  bool renew = false;
  std::string max_lifetime;
  std::string on_leak = "warn";
};

struct Held
{
  std::string lease_id;
  std::string name;
  std::string env_var;
  std::string value;
  util::Duration ttl{};
  Clock::time_point cap; // the daemon renews it no further (max_lease_ttl from creation)
  bool leak_reported = false;
};

// The self-pipe: signal handlers write the signal number, the poll loop reads it.
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int signo)
{
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(signo);
  (void)!::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

void write_all(int fd, std::string_view data)
{
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; // our reader went away (EPIPE): drop, the child keeps running
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void revoke_all(std::vector<Held>& held)
{
  if (held.empty()) {
    return;
  }
  try {
    rpc::Client client(socket_path());
    for (const auto& h : held) {
      try {
        client.call("secrets.revoke", {{"lease_id", h.lease_id}});
      } catch (const rpc::RemoteError&) {
        // already ended
      }
    }
  } catch (...) {
    // best effort: the leases expire on their own
  }
}

void wipe_all(std::vector<Held>& held)
{
  for (auto& h : held) {
    util::wipe(h.value);
  }
}

std::string lower(std::string s)
{
  if (!s.empty()) {
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  }
  return s;
}

Outcome fail(const std::string& message, const std::string& code, const std::string& fix, int exit)
{
  print(error_envelope(k_command, message, code, fix), stderr);
  return {nullptr, exit};
}

// Leases every secret; on any failure revokes the ones taken and rethrows.
std::vector<Held> take_leases(const Project& project, const ExecOptions& o, const std::string& client_id)
{
  std::vector<Held> held;
  held.reserve(project.secrets.size()); // no reallocation leaving unwiped copies
  try {
    rpc::Client client(socket_path());
    for (const auto& ref : project.secrets) {
      const std::string ttl = !o.ttl.empty() ? o.ttl : ref.ttl;
      json params = {{"secret_name", ref.name}, {"client_id", client_id}, {"ttl", ttl}};
      add_binding(params, "self"); // if we die, even by SIGKILL, the leases end
      const auto asked = Clock::now();
      json result = client.call("secrets.lease", params);
      auto& value = result["value"].get_ref<std::string&>();
      Held& h = held.emplace_back();
      h.lease_id = result.value("lease_id", "");
      h.ttl = util::parse_duration(result.value("ttl", "")).value_or(util::Duration::zero());
      const auto expires = util::parse_rfc3339(result.value("expires_at", ""));
      const auto max_expires = util::parse_rfc3339(result.value("max_expires_at", ""));
      h.cap = asked + h.ttl + (expires && max_expires ? *max_expires - *expires : util::Duration::zero());
      h.name = ref.name;
      h.env_var = ref.env_var;
      h.value = value; // copied in place: no temporary left unwiped
      util::wipe(value);
    }
  } catch (...) {
    revoke_all(held);
    wipe_all(held);
    throw;
  }
  return held;
}

// Restores signal dispositions and closes the self-pipe, whatever happens.
class SignalGuard
{
public:
  SignalGuard()
  {
    if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      util::throw_errno("failed to create a pipe");
    }
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
      ::sigaction(s, &sa, &m_old[s]);
    }
    struct sigaction ign{};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, &m_old[SIGPIPE]);
    ::sigaction(SIGTTOU, &ign, &m_old[SIGTTOU]);
  }
  ~SignalGuard()
  {
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGTTOU}) {
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

struct Pipe
{
  util::UniqueFd read;
  util::UniqueFd write;
};

Pipe make_pipe()
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    util::throw_errno("failed to create a pipe");
  }
  Pipe p;
  p.read.reset(fds[0]);
  p.write.reset(fds[1]);
  return p;
}

// The child's environment: ours, with each VAR replaced by its value.
std::vector<std::string> child_environment(const std::vector<Held>& held)
{
  size_t count = held.size();
  for (char** e = environ; *e != nullptr; ++e) {
    ++count;
  }
  std::vector<std::string> env;
  env.reserve(count); // no reallocation leaving unwiped copies of values
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& h : held) {
      overridden = overridden || key == h.env_var;
    }
    if (!overridden) {
      env.emplace_back(entry);
    }
  }
  for (const auto& h : held) {
    env.push_back(h.env_var + "=" + h.value);
  }
  return env;
}

// One masked stream: child pipe -> filter -> our fd.
struct Stream
{
  util::UniqueFd fd;
  int out = -1;
  const char* name = "";
  std::unique_ptr<MaskFilter> filter;

  bool open() const { return static_cast<bool>(fd); }

  void read_some()
  {
    char buf[65536];
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      return;
    }
    if (n <= 0) {
      close();
      return;
    }
    std::string out_text = filter->feed(std::string_view(buf, static_cast<size_t>(n)));
    explicit_bzero(buf, static_cast<size_t>(n));
    write_all(out, out_text);
  }

  void close()
  {
    if (filter) {
      write_all(out, filter->finish());
    }
    fd.reset();
  }
};

struct Ended
{
  std::string lease_id;
  std::string name;
  std::string reason;
};

int exit_for_reason(const std::string& reason)
{
  if (reason == "revoked" || reason == "killswitch" || reason == "secret_deleted") {
    return exit_code::denied;
  }
  return exit_code::error;
}

class Runner
{
public:
  Runner(const ExecOptions& o, std::vector<Held>& held) : m_o(o), m_held(held) {}

  int run()
  {
    open_watch();
    if (m_o.renew) {
      if (!m_o.max_lifetime.empty()) {
        m_lifetime_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          util::parse_duration(m_o.max_lifetime).value_or(util::Duration::zero()));
      }
      util::Duration shortest = m_held.front().ttl;
      for (const auto& h : m_held) {
        shortest = std::min(shortest, h.ttl);
      }
      schedule_renewal(shortest);
    }
    spawn();
    loop();
    if (m_ended) {
      return exit_for_reason(m_ended->reason);
    }
    if (WIFSIGNALED(m_status)) {
      return 128 + WTERMSIG(m_status);
    }
    return WEXITSTATUS(m_status);
  }

  ~Runner()
  {
    if (m_took_tty) {
      ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    }
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

private:
  void open_watch()
  {
    json ids = json::array();
    for (const auto& h : m_held) {
      ids.push_back(h.lease_id);
    }
    m_watch = std::make_unique<rpc::Client>(socket_path());
    m_watch->send("secrets.watch", {{"lease_ids", ids}});
    while (true) {
      json msg = m_watch->read_message(std::chrono::seconds{10});
      if (msg.is_null()) {
        throw util::Error(util::Errc::io, "the daemon did not answer secrets.watch", "secrets status");
      }
      if (msg.contains("id")) {
        if (msg.contains("error")) {
          const auto& err = msg["error"];
          throw rpc::RemoteError(err.value("code", rpc::code::internal), err.value("message", "watch failed"),
                                 "secrets status");
        }
        break;
      }
      m_early.push_back(std::move(msg));
    }
  }

  void spawn()
  {
    std::optional<Pipe> out_pipe;
    std::optional<Pipe> err_pipe;
    if (!m_o.no_masking) {
      out_pipe = make_pipe();
      err_pipe = make_pipe();
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    if (out_pipe) {
      posix_spawn_file_actions_adddup2(&actions, out_pipe->write.get(), STDOUT_FILENO);
      posix_spawn_file_actions_adddup2(&actions, err_pipe->write.get(), STDERR_FILENO);
    }
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE, SIGTTOU}) {
      sigaddset(&defaults, s);
    }
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> env = child_environment(m_held);
    std::vector<char*> envp;
    for (auto& e : env) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const auto& a : m_o.argv) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);

    const int rc = ::posix_spawnp(&m_pid, argv[0], &actions, &attr, argv.data(), envp.data());
    for (auto& e : env) {
      util::wipe(e);
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      throw SpawnError{rc};
    }
    // An interactive child reads the terminal: give it the foreground.
    if (::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) {
      m_took_tty = ::tcsetpgrp(STDIN_FILENO, m_pid) == 0;
    }
    if (out_pipe) {
      std::vector<std::string> values;
      values.reserve(m_held.size()); // no reallocation leaving unwiped copies
      for (const auto& h : m_held) {
        values.push_back(h.value);
      }
      m_out.fd = std::move(out_pipe->read);
      m_out.out = STDOUT_FILENO;
      m_out.name = "stdout";
      m_out.filter = std::make_unique<MaskFilter>(values);
      m_err.fd = std::move(err_pipe->read);
      m_err.out = STDERR_FILENO;
      m_err.name = "stderr";
      m_err.filter = std::make_unique<MaskFilter>(values);
      for (auto& v : values) {
        util::wipe(v);
      }
    }
  }

public:
  struct SpawnError
  {
    int err;
  };

private:
  void stop_child(const std::string& lease_id, const std::string& reason)
  {
    if (m_ended || m_exited) {
      return;
    }
    std::string name = "?";
    for (const auto& h : m_held) {
      if (h.lease_id == lease_id) {
        name = h.name;
      }
    }
    m_ended = Ended{lease_id, name, reason};
    if (lease_id.empty()) {
      std::fprintf(stderr, "secrets: %s; stopped the command\n", reason.c_str());
    } else {
      std::fprintf(stderr, "secrets: lease %s for %s ended (%s); stopped the command\n", lease_id.c_str(),
                   name.c_str(), reason.c_str());
    }
    std::fflush(stderr);
    ::kill(-m_pid, SIGTERM);
    m_kill_at = std::chrono::steady_clock::now() + k_kill_grace;
  }

  void on_message(const json& msg)
  {
    if (msg.value("method", "") != "lease.ended" || !msg.contains("params")) {
      return;
    }
    const std::string id = msg["params"].value("lease_id", "");
    for (const auto& h : m_held) {
      if (h.lease_id == id) {
        stop_child(id, msg["params"].value("reason", "ended"));
        return;
      }
    }
  }

  // --renew: at two thirds of each lease's TTL, renew it for its TTL again,
  // as far as --max-lifetime and the daemon's max_lease_ttl allow. A lease that
  // can be renewed no further is left to expire, which stops the child.
  void schedule_renewal(util::Duration ttl)
  {
    m_renew_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(ttl * 2 / 3);
  }

  void renew_leases()
  {
    m_renew_at.reset();
    const auto now = Clock::now();
    std::optional<util::Duration> next;
    for (auto& h : m_held) {
      auto ttl = h.ttl;
      for (const auto limit : {h.cap, m_lifetime_end}) {
        ttl = std::min(ttl, std::chrono::duration_cast<util::Duration>(limit - now));
      }
      if (ttl < std::chrono::seconds{1}) {
        continue;
      }
      try {
        call("secrets.renew", {{"lease_id", h.lease_id}, {"ttl", util::format_duration(ttl)}});
        next = next ? std::min(*next, ttl) : ttl;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "secrets: could not renew lease %s for %s: %s\n", h.lease_id.c_str(), h.name.c_str(),
                     e.what());
      }
    }
    if (next) {
      schedule_renewal(*next);
    }
  }

  // --on-leak: a leased value seen in the child's output (and concealed) is
  // reported once per lease; the daemon audits it and, for revoke or rotate,
  // ends the lease, which stops the child.
  void check_leaks(Stream& s)
  {
    if (!s.filter) {
      return;
    }
    for (const size_t i : s.filter->take_hits()) {
      Held& h = m_held.at(i);
      if (h.leak_reported) {
        continue;
      }
      h.leak_reported = true;
      if (m_o.on_leak != "warn") { // warn is audit-only: the child's stderr stays its own
        std::fprintf(stderr, "secrets: the value of %s (lease %s) appeared on the command's %s; it was concealed (%s)\n",
                     h.name.c_str(), h.lease_id.c_str(), s.name, m_o.on_leak.c_str());
      }
      try {
        call("secrets.reportLeak", {{"lease_id", h.lease_id}, {"stream", s.name}, {"action", m_o.on_leak}});
      } catch (const std::exception& e) {
        std::fprintf(stderr, "secrets: could not report the leak: %s\n", e.what());
      }
    }
  }

  void read_watch()
  {
    try {
      while (true) {
        json msg = m_watch->read_message(std::chrono::milliseconds{0});
        if (msg.is_null()) {
          return;
        }
        on_message(msg);
      }
    } catch (...) {
      m_watch.reset();
      stop_child("", "lost the watch connection to the daemon, so a lease may have ended unseen");
    }
  }

  void reap()
  {
    if (m_exited) {
      return;
    }
    int status = 0;
    const pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_exited = true;
      m_status = status;
    }
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
          reap();
        } else if (!m_exited) {
          ::kill(-m_pid, s);
        }
      }
    }
  }

  void loop()
  {
    for (const auto& msg : m_early) {
      on_message(msg);
    }
    reap();
    while (true) {
      const auto now = std::chrono::steady_clock::now();
      if (m_exited) {
        // Done once the pipes reach EOF; a grandchild that keeps them open
        // gets half a second of quiet before we stop forwarding.
        if (!m_out.open() && !m_err.open()) {
          break;
        }
      }
      if (m_kill_at && !m_exited && now >= *m_kill_at) {
        ::kill(-m_pid, SIGKILL);
        m_kill_at.reset();
      }
      std::vector<pollfd> fds;
      fds.push_back({g_signal_pipe[0], POLLIN, 0});
      if (m_watch && !m_exited) {
        fds.push_back({m_watch->fd(), POLLIN, 0});
      }
      const size_t first_stream = fds.size();
      if (m_out.open()) {
        fds.push_back({m_out.fd.get(), POLLIN, 0});
      }
      if (m_err.open()) {
        fds.push_back({m_err.fd.get(), POLLIN, 0});
      }
      int timeout = -1;
      if (m_kill_at && !m_exited) {
        timeout = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(*m_kill_at - now).count() + 1);
      } else if (m_renew_at && !m_exited && !m_ended) {
        if (now >= *m_renew_at) {
          renew_leases();
          continue;
        }
        timeout = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(*m_renew_at - now).count() + 1);
      }
      if (m_exited) {
        timeout = 500;
      }
      const int ready = ::poll(fds.data(), fds.size(), timeout);
      if (ready < 0) {
        if (errno == EINTR) {
          continue;
        }
        util::throw_errno("failed to wait for the command");
      }
      if (ready == 0 && m_exited) {
        m_out.close();
        m_err.close();
        break;
      }
      if (fds[0].revents != 0) {
        on_signals();
      }
      if (m_watch && !m_exited && fds.size() > 1 && fds[1].fd == m_watch->fd() && fds[1].revents != 0) {
        read_watch();
      }
      for (size_t i = first_stream; i < fds.size(); ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        Stream& s = fds[i].fd == m_out.fd.get() ? m_out : m_err;
        s.read_some();
      }
      check_leaks(m_out);
      check_leaks(m_err);
      reap();
    }
    if (!m_exited) {
      // Unreachable in practice; never leave a zombie.
      ::waitpid(m_pid, &m_status, 0);
      m_exited = true;
    }
  }

  const ExecOptions& m_o;
  std::vector<Held>& m_held;
  std::unique_ptr<rpc::Client> m_watch;
  std::vector<json> m_early;
  Stream m_out;
  Stream m_err;
  pid_t m_pid = -1;
  bool m_exited = false;
  bool m_took_tty = false;
  int m_status = 0;
  std::optional<std::chrono::steady_clock::time_point> m_kill_at;
  std::optional<Clock::time_point> m_renew_at;
  Clock::time_point m_lifetime_end = Clock::time_point::max();
  std::optional<Ended> m_ended;
};

Outcome do_exec(const ExecOptions& o)
{
  if (o.argv.empty()) {
    return fail("no command to run", "usage", "secrets exec --secret NAME=VAR -- CMD ARGS...", exit_code::usage);
  }
  if (o.on_leak != "warn" && o.on_leak != "revoke" && o.on_leak != "rotate") {
    return fail("invalid --on-leak \"" + o.on_leak + "\": expected warn, revoke or rotate", "usage",
                "secrets exec --on-leak revoke -- " + o.argv.front(), exit_code::usage);
  }
  if (o.no_masking && o.on_leak != "warn") {
    return fail("--on-leak " + o.on_leak + " needs the masking filter, which --no-masking turns off", "usage",
                "secrets exec --on-leak " + o.on_leak + " -- " + o.argv.front(), exit_code::usage);
  }
  if (!o.max_lifetime.empty() && (!o.renew || !util::parse_duration(o.max_lifetime)
                                  || *util::parse_duration(o.max_lifetime) <= util::Duration::zero())) {
    return fail("--max-lifetime takes a positive duration and goes with --renew", "usage",
                "secrets exec --renew --max-lifetime 2h -- " + o.argv.front(), exit_code::usage);
  }
  std::vector<Held> held;
  try {
    const Project project = load_project(o.file, o.secrets);
    if (project.secrets.empty()) {
      return fail("no secrets listed in " + project.source, "usage",
                  "secrets exec --secret NAME=VAR -- " + o.argv.front(), exit_code::usage);
    }
    const std::string client_id = !o.client_id.empty() ? o.client_id
                                  : !project.client_id.empty() ? project.client_id
                                                               : std::string("exec");
    held = take_leases(project, o, client_id);
  } catch (...) {
    const Failure f = failure_from_current_exception();
    return fail(f.message, f.code, f.fix, f.exit);
  }

  int exit = exit_code::error;
  {
    SignalGuard signals;
    Runner runner(o, held);
    try {
      exit = runner.run();
    } catch (const Runner::SpawnError& e) {
      revoke_all(held);
      wipe_all(held);
      const bool missing = e.err == ENOENT;
      return fail("failed to run " + o.argv.front() + ": " + lower(std::strerror(e.err)), missing ? "not_found" : "io",
                  missing ? "command -v " + o.argv.front() + "  # check the command is on PATH"
                          : "ls -l \"$(command -v " + o.argv.front() + ")\"  # check it is executable",
                  missing ? 127 : 126);
    } catch (...) {
      revoke_all(held);
      wipe_all(held);
      const Failure f = failure_from_current_exception();
      return fail(f.message, f.code, f.fix, f.exit);
    }
  }
  revoke_all(held);
  wipe_all(held);
  return {nullptr, exit};
}

} // namespace

void add_exec_command(CLI::App& app, CommandAction& action)
{
  static ExecOptions o;
  auto* exec = app.add_subcommand("exec", "run a command with leased secrets in its environment (masked output)");
  exec->add_option("--ttl", o.ttl, "lease duration for every secret, e.g. 30m (default: per secret, or config)");
  exec->add_option("--client-id", o.client_id, "who holds the leases (default: .secrets.json, else exec)");
  exec->add_flag("--no-masking", o.no_masking, "pass the command's stdout and stderr through unfiltered");
  exec->add_flag("--renew", o.renew, "renew the leases at two thirds of their TTL while the command runs");
  exec->add_option("--max-lifetime", o.max_lifetime, "with --renew: stop renewing after this long, e.g. 8h");
  exec->add_option("--on-leak", o.on_leak,
                   "when the command prints a leased value: warn (audit it), revoke (and stop the command), "
                   "or rotate (revoke and run the secret's rotation hook); default warn");
  exec->add_option("--file", o.file, "the .secrets.json to use (default: looked up from the cwd upwards)");
  exec->add_option("--secret", o.secrets, "NAME[=ENV_VAR]; repeatable; replaces .secrets.json")
    ->allow_extra_args(false); // one value per flag, so that -- is never taken as one
  // CMD ARGS... go after --: from there on everything is the command's, even
  // words that look like options or name a secrets subcommand (env).
  exec->add_option("command", o.argv, "the command and its arguments, after --");
  exec->callback([&action] { action = [] { return do_exec(o); }; });
}

} // namespace cmd
