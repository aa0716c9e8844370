#include "rotation/runner.hpp"

#include "rotation/cgroup.hpp"
#include "rotation/reaper.hpp"
#include "rotation/redact.hpp"
#include "util/duration.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <vector>

extern char** environ;

namespace rotation {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One read or write per ready descriptor per poll round: a hook that writes
// without pause cannot keep us from checking the deadline.
constexpr std::size_t k_io_chunk = 64 * 1024;
// How long the reaper may take to kill and reap everything once told to:
// its own limit, plus room to start up on a loaded machine.
constexpr milliseconds k_reaper_exit_limit = k_reaper_kill_limit + std::chrono::seconds{5};

// The daemon's environment with SECRET_NAME replaced.
std::vector<std::string> hook_environment(const std::string& secret_name)
{
  constexpr std::string_view key = "SECRET_NAME=";
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    if (std::string_view(*e).substr(0, key.size()) != key) {
      env.emplace_back(*e);
    }
  }
  env.push_back(std::string(key) + secret_name);
  return env;
}

// Blocks SIGPIPE in the calling thread for its lifetime, so a write to a hook
// that closed its stdin fails with EPIPE instead of killing the daemon. A
// SIGPIPE that our own writes left pending is consumed before the old mask
// comes back; one that was already pending is left alone.
class SigpipeBlock
{
public:
  SigpipeBlock()
  {
    sigemptyset(&m_pipe);
    sigaddset(&m_pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &m_pipe, &m_old);
    m_was_pending = pending();
  }
  ~SigpipeBlock()
  {
    if (!m_was_pending && pending()) {
      const timespec zero{};
      while (::sigtimedwait(&m_pipe, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &m_old, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

private:
  static bool pending()
  {
    sigset_t set;
    sigemptyset(&set);
    return ::sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
  }

  sigset_t m_pipe;
  sigset_t m_old;
  bool m_was_pending = false;
};

std::string describe_wait_status(int exit_code, int signo)
{
  if (signo != 0) {
    const char* abbrev = sigabbrev_np(signo);
    return "killed by signal " + std::to_string(signo) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  return "exited with status " + std::to_string(exit_code);
}

// One line of the reaper's reports (rotation/reaper.hpp).
struct ReaperReport
{
  bool joined = false;
  std::string spawn_error;
  std::optional<int> leader_status;
  std::size_t survivors = 0;

  void parse(std::string_view line)
  {
    const auto space = line.find(' ');
    const auto word = line.substr(0, space);
    const auto rest = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    if (word == "joined") {
      joined = true;
    } else if (word == "spawn_failed") {
      spawn_error = rest;
    } else if (word == "exited") {
      leader_status = std::atoi(std::string(rest).c_str());
    } else if (word == "survivors") {
      survivors = static_cast<std::size_t>(std::atol(std::string(rest).c_str()));
    }
  }
};

} // namespace

const char* to_string(HookResult::Status status)
{
  switch (status) {
  case HookResult::Status::ok:
    return "ok";
  case HookResult::Status::failed:
    return "failed";
  case HookResult::Status::timed_out:
    return "timed_out";
  case HookResult::Status::spawn_failed:
    return "spawn_failed";
  }
  return "unknown";
}

std::string trim(std::string_view s)
{
  constexpr std::string_view space = " \t\r\n";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = s.find_last_not_of(space);
  return std::string(s.substr(first, last - first + 1));
}

Containment containment_from_environment()
{
  const char* v = std::getenv("AGENT_SECRETS_HOOK_CGROUP");
  return v && std::string_view(v) == "off" ? Containment::reaper_only : Containment::automatic;
}

HookResult run_hook(const std::string& command,
                    const std::string& secret_name,
                    std::string_view stdin_data,
                    milliseconds timeout,
                    milliseconds kill_grace,
                    Containment containment)
{
  const auto start = Clock::now();
  HookResult result;
  auto finish = [&] {
    result.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    return std::move(result);
  };

  // Reserved before the hook writes a byte: appending never reallocates, so
  // no stray copy of a partial value is left in freed memory. stderr may hold
  // a value too until it is redacted.
  result.stdout_data.reserve(k_max_stdout);
  std::string err_data;
  err_data.reserve(k_stderr_capture);
  std::vector<char> buffer(k_io_chunk);
  struct Wipe
  {
    std::vector<char>& b;
    std::string& e;
    ~Wipe()
    {
      explicit_bzero(b.data(), b.size());
      util::wipe(e);
    }
  } wipe_buffers{buffer, err_data};

  // The fallback is complete on its own; why no cgroup was made does not matter here.
  std::string why_not;
  const std::optional<HookCgroup> cgroup =
    containment == Containment::automatic ? HookCgroup::create(why_not) : std::nullopt;
  util::Pipe in;
  util::Pipe out;
  util::Pipe err;
  util::Pipe status;
  std::optional<util::Child> reaper;
  try {
    // util::spawn keeps the dup2s onto 0-4 from overwriting a pipe end
    // sitting there (a daemon started with closed stdio).
    in = util::make_pipe();
    out = util::make_pipe();
    err = util::make_pipe();
    status = util::make_pipe();
    util::Pipe control = util::make_pipe();
    util::set_nonblocking(in.write_end.get());
    util::set_nonblocking(out.read_end.get());
    util::set_nonblocking(err.read_end.get());
    util::set_nonblocking(status.read_end.get());
    const std::vector<std::string> env = hook_environment(secret_name);
    util::SpawnSpec spec;
    spec.program = "/proc/self/exe";
    spec.argv = {std::string(k_reaper_argv0), cgroup ? cgroup->path() : std::string(), command};
    spec.env = &env;
    spec.fds = {{0, in.read_end.get()},
                {1, out.write_end.get()},
                {2, err.write_end.get()},
                {k_reaper_status_fd, status.write_end.get()},
                {k_reaper_control_fd, control.read_end.get()}};
    // Defence in depth for daemon fds opened without O_CLOEXEC.
    spec.close_from = k_reaper_control_fd + 1;
    spec.kill_grace = kill_grace;
    reaper.emplace(util::spawn(spec));
    // The reaper kills the hook and everything it started at EOF on its
    // control pipe, then exits: that is the kill, not a SIGKILL to it.
    reaper->kill_by_closing(std::move(control.write_end));
    // The timeout's SIGTERM goes to the reaper, which passes it to every
    // descendant; its group may still hold the leader before setpgid.
    reaper->terminate_child_only();
  } catch (const util::Error& e) {
    result.status = HookResult::Status::spawn_failed;
    result.error = e.what();
    return finish();
  }
  // Our copies of the reaper's ends: closing them is what lets EOF arrive.
  in.read_end.reset();
  out.write_end.reset();
  err.write_end.reset();
  status.write_end.reset();

  const SigpipeBlock sigpipe_block;
  std::size_t written = 0;
  if (stdin_data.empty()) {
    in.write_end.reset();
  }

  std::string& out_data = result.stdout_data;
  ReaperReport report;
  std::string status_text;
  bool err_truncated = false;
  bool overflow = false;
  bool timed_out = false;
  bool exited = false;
  const auto deadline = util::saturating_add(start, timeout);
  Clock::time_point drain_until{};

  auto start_termination = [&](Clock::time_point now) {
    if (!exited) {
      reaper->terminate(now);
    }
  };
  auto note_exit = [&](Clock::time_point now) {
    if (!exited) {
      exited = true;
      drain_until = util::saturating_add(now, k_drain_window);
      in.write_end.reset();
    }
  };
  // Reads the reaper's reports; false at EOF, which is the reaper's exit.
  auto read_status = [&]() {
    char chunk[256];
    const ssize_t r = ::read(status.read_end.get(), chunk, sizeof chunk);
    if (r > 0) {
      status_text.append(chunk, static_cast<std::size_t>(r));
      for (auto nl = status_text.find('\n'); nl != std::string::npos; nl = status_text.find('\n')) {
        report.parse(std::string_view(status_text).substr(0, nl));
        status_text.erase(0, nl + 1);
      }
      return true;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
      status.read_end.reset();
      return false;
    }
    return true;
  };

  for (;;) {
    auto now = Clock::now();
    if (!exited) {
      if (!reaper->terminating() && now >= deadline) {
        timed_out = true;
        start_termination(now);
      }
      reaper->kill_if_due(now);
    } else if ((!out.read_end && !err.read_end) || now >= drain_until) {
      break;
    }

    auto next = Clock::time_point::max();
    if (exited) {
      next = drain_until;
    } else if (!reaper->terminating()) {
      next = deadline;
    } else if (const auto kill_at = reaper->kill_at()) {
      next = *kill_at;
    }
    int wait_ms = -1;
    if (next != Clock::time_point::max()) {
      const auto ms = std::chrono::ceil<milliseconds>(next - now).count();
      wait_ms = static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }

    pollfd fds[4];
    nfds_t n = 0;
    auto add = [&](int fd, short events) {
      if (fd < 0) {
        return -1;
      }
      fds[n] = pollfd{fd, events, 0};
      return static_cast<int>(n++);
    };
    const int in_i = add(in.write_end.get(), POLLOUT);
    const int out_i = add(out.read_end.get(), POLLIN);
    const int err_i = add(err.read_end.get(), POLLIN);
    const int status_i = add(status.read_end.get(), POLLIN);

    if (::poll(fds, n, wait_ms) < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to poll the rotation hook's pipes");
    }
    now = Clock::now();

    if (in_i >= 0 && fds[in_i].revents != 0) {
      const auto chunk = std::min(stdin_data.size() - written, k_io_chunk);
      const ssize_t w = ::write(in.write_end.get(), stdin_data.data() + written, chunk);
      if (w > 0) {
        written += static_cast<std::size_t>(w);
        if (written == stdin_data.size()) {
          in.write_end.reset();
        }
      } else if (errno != EAGAIN && errno != EINTR) {
        // EPIPE: the hook does not read its stdin, which is allowed.
        in.write_end.reset();
      }
    }

    if (out_i >= 0 && fds[out_i].revents != 0) {
      const ssize_t r = ::read(out.read_end.get(), buffer.data(), buffer.size());
      if (r > 0) {
        const auto got = static_cast<std::size_t>(r);
        if (out_data.size() + got > k_max_stdout) {
          overflow = true;
          out.read_end.reset(); // further writes by the hook get SIGPIPE
          start_termination(now);
        } else {
          out_data.append(buffer.data(), got);
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        out.read_end.reset();
      }
    }

    if (err_i >= 0 && fds[err_i].revents != 0) {
      const ssize_t r = ::read(err.read_end.get(), buffer.data(), buffer.size());
      if (r > 0) {
        const auto got = static_cast<std::size_t>(r);
        // Past the cap, stderr is still read (and dropped) so the hook never
        // blocks on it.
        const auto keep = std::min(got, k_stderr_capture - err_data.size());
        err_data.append(buffer.data(), keep);
        err_truncated = err_truncated || keep < got;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        err.read_end.reset();
      }
    }

    if (status_i >= 0 && fds[status_i].revents != 0) {
      if (!read_status() || report.leader_status) {
        // Reaped, or the reaper itself is gone: either way the hook is over.
        note_exit(now);
      }
    }
  }

  // Whatever the hook left behind is killed now; the reaper exits once it
  // has reaped it all, and its last reports (exited, survivors) come first.
  reaper->kill();
  out.read_end.reset();
  err.read_end.reset();
  const auto give_up = Clock::now() + k_reaper_exit_limit;
  while (status.read_end) {
    const auto left = std::chrono::ceil<milliseconds>(give_up - Clock::now()).count();
    pollfd fd{status.read_end.get(), POLLIN, 0};
    const int ready = left > 0 ? ::poll(&fd, 1, static_cast<int>(left)) : 0;
    if (ready == 0) {
      reaper->signal(SIGKILL); // wedged: its descendants go to init, the cgroup keeps them
      break;
    }
    if (ready > 0) {
      read_status();
    } else if (errno != EINTR) {
      break;
    }
  }
  reaper->wait();
  reaper.reset();

  result.containment = report.joined ? "cgroup" : "reaper";
  result.survivors = report.survivors;
  if (report.leader_status) {
    const int wait_status = *report.leader_status;
    if (WIFEXITED(wait_status)) {
      result.exit_code = WEXITSTATUS(wait_status);
    } else if (WIFSIGNALED(wait_status)) {
      result.signal = WTERMSIG(wait_status);
    }
  }
  // Redacted before out_data is wiped: the new value is one of the values.
  std::string trimmed = trim(out_data);
  result.stderr_tail = redact_stderr(err_data, err_truncated, {stdin_data, out_data, trimmed});
  util::wipe(trimmed);

  if (!report.spawn_error.empty()) {
    result.status = HookResult::Status::spawn_failed;
    result.error = report.spawn_error;
  } else if (timed_out) {
    result.status = HookResult::Status::timed_out;
    result.error = "timed out after " + util::format_duration(timeout) + ", " +
                   describe_wait_status(result.exit_code, result.signal);
  } else if (overflow) {
    result.status = HookResult::Status::failed;
    result.error = "output too large (over " + std::to_string(k_max_stdout / (1024 * 1024)) + " MiB)";
  } else if (!report.leader_status) {
    result.status = HookResult::Status::failed;
    result.error = "the hook's reaper ended without reporting how the hook ended";
  } else if (result.signal == 0 && result.exit_code == 0) {
    result.status = HookResult::Status::ok;
  } else {
    result.status = HookResult::Status::failed;
    result.error = describe_wait_status(result.exit_code, result.signal);
  }
  if (result.status != HookResult::Status::ok) {
    explicit_bzero(out_data.data(), out_data.size());
    out_data.clear();
  }
  return finish();
}

} // namespace rotation
