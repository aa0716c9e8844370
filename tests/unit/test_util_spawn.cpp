// util/spawn: real children (/bin/sh), no mocks.
#include "util/spawn.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

util::SpawnSpec shell(const std::string& script)
{
  util::SpawnSpec spec;
  spec.program = "/bin/sh";
  spec.argv = {"sh", "-c", script};
  return spec;
}

// Everything the pipe gives until EOF.
std::string read_all(util::UniqueFd& fd)
{
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof(buf))) != 0) {
    if (n < 0) {
      REQUIRE(errno == EINTR);
      continue;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

// One line from the pipe (blocking).
std::string read_line(int fd)
{
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') {
    line += c;
  }
  return line;
}

bool is_cloexec(int fd)
{
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

// Gone or a zombie waiting for its new parent: either way no longer running.
bool process_ended(pid_t pid)
{
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) {
    return true;
  }
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

// Polls a condition for up to 10 s; no timing is asserted, only the outcome.
template <typename F>
bool wait_until(F condition)
{
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) {
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Waits for the child, carrying out its armed kill when due.
int wait_with_kill(util::Child& child)
{
  while (!child.try_wait()) {
    child.kill_if_due(util::SteadyClock::now());
    std::this_thread::sleep_for(5ms);
  }
  return child.status();
}

} // namespace

TEST_CASE("spawn: exit status, argv and environment reach the child")
{
  util::Pipe out = util::make_pipe();
  util::SpawnSpec spec = shell("printf '%s|%s' \"$1\" \"$ONLY\"; exit 3");
  spec.argv.push_back("sh");
  spec.argv.push_back("first arg");
  const std::vector<std::string> env = {"ONLY=this"};
  spec.env = &env;
  spec.fds = {{STDOUT_FILENO, out.write_end.get()}};
  util::Child child = util::spawn(spec);
  out.write_end.reset();
  CHECK(read_all(out.read_end) == "first arg|this");
  const int status = child.wait();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 3);
  CHECK(child.reaped());
  CHECK(child.try_wait() == status); // the status stays once reaped
}

TEST_CASE("spawn: a missing program is a SpawnError with its errno")
{
  util::SpawnSpec spec;
  spec.program = "/nonexistent/agent-secrets-test";
  spec.argv = {"x"};
  try {
    (void)util::spawn(spec);
    FAIL("spawned a missing program");
  } catch (const util::SpawnError& e) {
    CHECK(e.error_number() == ENOENT);
    CHECK(std::string(e.what()).find("no such file") != std::string::npos);
  }
  spec.program = "agent-secrets-no-such-program";
  spec.search_path = true;
  CHECK_THROWS_AS((void)util::spawn(spec), util::SpawnError);
}

TEST_CASE("spawn: descriptor lists that swap two targets give each its own source")
{
  // Sources sit on each other's targets: done in order without the copy
  // above every target, the first dup2 would overwrite the second's source.
  constexpr int k_a = 200;
  constexpr int k_b = 201;
  REQUIRE(::fcntl(k_a, F_GETFD) < 0);
  REQUIRE(::fcntl(k_b, F_GETFD) < 0);
  util::Pipe a = util::make_pipe();
  util::Pipe b = util::make_pipe();
  REQUIRE(::dup3(a.write_end.get(), k_a, O_CLOEXEC) == k_a);
  REQUIRE(::dup3(b.write_end.get(), k_b, O_CLOEXEC) == k_b);
  a.write_end.reset(k_a);
  b.write_end.reset(k_b);
  util::SpawnSpec spec = shell("echo to-a > /proc/self/fd/200; echo to-b > /proc/self/fd/201");
  spec.fds = {{k_a, b.write_end.get()}, {k_b, a.write_end.get()}};
  util::Child child = util::spawn(spec);
  a.write_end.reset();
  b.write_end.reset();
  CHECK(read_all(a.read_end) == "to-b\n");
  CHECK(read_all(b.read_end) == "to-a\n");
  CHECK(child.wait() == 0);
}

TEST_CASE("spawn: close_from closes what the caller left inheritable")
{
  util::Pipe out = util::make_pipe();
  constexpr int k_leaky = 202;
  REQUIRE(::fcntl(k_leaky, F_GETFD) < 0);
  REQUIRE(::dup2(STDIN_FILENO, k_leaky) == k_leaky); // not O_CLOEXEC
  util::SpawnSpec spec = shell("if [ -e /proc/self/fd/202 ]; then echo open; else echo closed; fi");
  spec.fds = {{STDOUT_FILENO, out.write_end.get()}};
  spec.close_from = 3;
  util::Child child = util::spawn(spec);
  ::close(k_leaky);
  out.write_end.reset();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  CHECK(read_all(out.read_end) == "closed\n");
#else
  (void)read_all(out.read_end);
#endif
  CHECK(child.wait() == 0);
}

TEST_CASE("spawn: the child starts with default dispositions and leads its own group")
{
  struct sigaction ignore{};
  struct sigaction old{};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  REQUIRE(::sigaction(SIGUSR1, &ignore, &old) == 0);
  util::Pipe out = util::make_pipe();
  util::SpawnSpec spec = shell("echo $$ $(cut -d' ' -f5 /proc/$$/stat); kill -USR1 $$; exit 0");
  spec.fds = {{STDOUT_FILENO, out.write_end.get()}};
  util::Child child = util::spawn(spec);
  ::sigaction(SIGUSR1, &old, nullptr);
  out.write_end.reset();
  const std::string line = read_all(out.read_end);
  const std::string pid = std::to_string(child.pid());
  CHECK(line == pid + " " + pid + "\n"); // pid and process group are the same
  const int status = child.wait();
  REQUIRE(WIFSIGNALED(status)); // our SIG_IGN was not inherited
  CHECK(WTERMSIG(status) == SIGUSR1);
}

TEST_CASE("make_pipe and move_at_or_above keep descriptors above the floor and O_CLOEXEC")
{
  util::Pipe p = util::make_pipe(100);
  CHECK(p.read_end.get() >= 100);
  CHECK(p.write_end.get() >= 100);
  CHECK(is_cloexec(p.read_end.get()));
  CHECK(is_cloexec(p.write_end.get()));
  util::Pipe low = util::make_pipe(0);
  const int before = low.read_end.get();
  util::UniqueFd moved = util::move_at_or_above(std::move(low.read_end), before + 50);
  CHECK(moved.get() >= before + 50);
  CHECK(is_cloexec(moved.get()));
  CHECK(::fcntl(before, F_GETFD) < 0); // the original was closed
  util::UniqueFd same = util::move_at_or_above(std::move(moved), 3);
  CHECK(same.get() >= before + 50); // already above: unchanged
}

TEST_CASE("terminate: SIGTERM to the group first, SIGKILL after the grace")
{
  util::Pipe out = util::make_pipe();
  // The shell survives SIGTERM (its trap says so); a background sleep in its
  // group does not.
  util::SpawnSpec spec = shell("trap 'echo term' TERM; sleep 60 & echo $!; while :; do wait; sleep 0.05; done");
  spec.fds = {{STDOUT_FILENO, out.write_end.get()}};
  spec.kill_grace = 300ms;
  util::Child child = util::spawn(spec);
  out.write_end.reset();
  const pid_t grandchild = std::stoi(read_line(out.read_end.get()));
  CHECK_FALSE(child.terminating());
  child.terminate();
  CHECK(child.terminating());
  REQUIRE(child.kill_at().has_value());
  CHECK(read_line(out.read_end.get()) == "term"); // SIGTERM came, and was survived
  const int status = wait_with_kill(child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(wait_until([&] { return process_ended(grandchild); }));
  CHECK_FALSE(child.kill_at().has_value());
}

TEST_CASE("terminate: a child that exits on SIGTERM is never killed, and a reaped one gets nothing")
{
  util::Pipe out = util::make_pipe();
  util::SpawnSpec spec = shell("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done");
  spec.fds = {{STDOUT_FILENO, out.write_end.get()}};
  spec.kill_grace = std::chrono::hours{1};
  util::Child child = util::spawn(spec);
  out.write_end.reset();
  REQUIRE(read_line(out.read_end.get()) == "ready"); // the trap is set
  child.terminate();
  const int status = wait_with_kill(child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 7);
  child.signal(SIGKILL); // reaped: no signal goes to a pid that may be reused
  child.signal_group(SIGKILL);
  child.terminate();
  CHECK(child.status() == status);
}

TEST_CASE("kill_by_closing and terminate_child_only: the child ends its descendants itself")
{
  util::Pipe control = util::make_pipe();
  util::Pipe out = util::make_pipe();
  // Like the hook's reaper: SIGTERM goes to the shell alone (cat, in its
  // group, would die of it: status 143), and EOF on the pipe ends cat.
  util::SpawnSpec spec = shell("trap 'echo term' TERM; echo ready; cat; echo \"cat:$?\"");
  spec.fds = {{STDIN_FILENO, control.read_end.get()}, {STDOUT_FILENO, out.write_end.get()}};
  spec.kill_grace = 100ms;
  util::Child child = util::spawn(spec);
  control.read_end.reset();
  out.write_end.reset();
  child.kill_by_closing(std::move(control.write_end));
  child.terminate_child_only();
  CHECK(read_line(out.read_end.get()) == "ready");
  child.terminate();
  const int status = wait_with_kill(child);
  REQUIRE(WIFEXITED(status)); // closing the pipe ended it, not SIGKILL
  CHECK(WEXITSTATUS(status) == 0);
  const std::string rest = read_all(out.read_end);
  CHECK(rest.find("cat:0\n") != std::string::npos);
  CHECK(rest.find("term\n") != std::string::npos);
}

TEST_CASE("an unreaped Child is killed and reaped by its destructor")
{
  pid_t pid = -1;
  {
    util::Child child = util::spawn(shell("sleep 60"));
    pid = child.pid();
    util::Child moved(std::move(child)); // the moved-from one does nothing
  }
  int status = 0;
  CHECK(::waitpid(pid, &status, WNOHANG) < 0); // already reaped
  CHECK(errno == ECHILD);
}

TEST_CASE("saturating_add clamps at the clock's end and ignores negative durations")
{
  const auto now = util::SteadyClock::now();
  CHECK(util::saturating_add(now, -5s) == now);
  CHECK(util::saturating_add(now, 2s) == now + 2s);
  CHECK(util::saturating_add(now, std::chrono::milliseconds::max()) == util::SteadyClock::time_point::max());
}
