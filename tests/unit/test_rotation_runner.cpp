#include "rotation/runner.hpp"

#include "rotation/cgroup.hpp"
#include "rotation/redact.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using rotation::HookResult;
using rotation::run_hook;
using rotation::trim;
using Status = rotation::HookResult::Status;
using Clock = std::chrono::steady_clock;

namespace {

// Generous: these hooks are real processes on a possibly loaded machine.
constexpr auto k_prompt = 5s;

HookResult run(const std::string& command,
               std::string_view stdin_data = {},
               std::chrono::milliseconds timeout = 10s,
               std::chrono::milliseconds grace = 1s)
{
  return run_hook(command, "test/secret", stdin_data, timeout, grace);
}

// A killed orphan is a zombie until its new parent reaps it, and a container's
// PID 1 may never do so: a zombie counts as gone.
bool process_gone(pid_t pid)
{
  if (::kill(pid, 0) != 0) {
    return errno == ESRCH;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) {
    return true;
  }
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() &&
         (line[paren + 2] == 'Z' || line[paren + 2] == 'X');
}

bool gone_within(pid_t pid, std::chrono::milliseconds limit)
{
  const auto until = Clock::now() + limit;
  while (!process_gone(pid)) {
    if (Clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

bool sigpipe_pending()
{
  sigset_t set;
  sigemptyset(&set);
  ::sigpending(&set);
  return sigismember(&set, SIGPIPE) == 1;
}

bool sigpipe_blocked()
{
  sigset_t set;
  sigemptyset(&set);
  pthread_sigmask(SIG_BLOCK, nullptr, &set);
  return sigismember(&set, SIGPIPE) == 1;
}

bool ends_with(const std::string& s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

TEST_CASE("rotation trim strips ASCII whitespace at both ends only")
{
  CHECK(trim("new-value") == "new-value");
  CHECK(trim("  new value \r\n") == "new value");
  CHECK(trim("\t\n\r ") == "");
  CHECK(trim("") == "");
  CHECK(trim("\na\tb\n") == "a\tb");
}

TEST_CASE("rotation hook exiting 0 with output gives the new value")
{
  auto r = run("echo '  s3cret-2 '");
  CHECK(r.status == Status::ok);
  CHECK(r.exit_code == 0);
  CHECK(r.signal == 0);
  CHECK(r.error.empty());
  CHECK(r.stdout_data == "  s3cret-2 \n");
  CHECK(trim(r.stdout_data) == "s3cret-2");
  CHECK(r.elapsed < k_prompt);
}

TEST_CASE("rotation hook exiting 0 with no output is ok and empty")
{
  auto r = run("true");
  CHECK(r.status == Status::ok);
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data.empty());
  CHECK(r.stderr_tail.empty());
}

TEST_CASE("rotation hook failing keeps its stderr and drops its stdout")
{
  auto r = run("echo partial; echo 'vault unreachable' >&2; exit 3");
  CHECK(r.status == Status::failed);
  CHECK(r.exit_code == 3);
  CHECK(r.signal == 0);
  CHECK(r.stderr_tail == "vault unreachable\n");
  CHECK(r.stdout_data.empty());
  CHECK(r.error == "exited with status 3");
}

TEST_CASE("rotation hook stderr of 100 KiB is cut to 4 KiB with a mark")
{
  auto r = run("head -c 102400 /dev/zero | tr '\\0' e >&2; exit 1");
  CHECK(r.status == Status::failed);
  CHECK(r.exit_code == 1);
  CHECK(r.stderr_tail.size() <= rotation::k_max_stderr);
  CHECK(r.stderr_tail.size() > rotation::k_max_stderr - 16);
  CHECK(ends_with(r.stderr_tail, rotation::k_truncation_mark));
  const auto body = r.stderr_tail.substr(0, r.stderr_tail.size() - rotation::k_truncation_mark.size());
  CHECK(body == std::string(body.size(), 'e'));
}

TEST_CASE("rotation hook stderr is cut on a UTF-8 character boundary")
{
  // 3-byte characters: the cut at 4096 - mark lands inside one.
  auto r = run("i=0; while [ $i -lt 2000 ]; do printf '\\342\\202\\254'; i=$((i+1)); done >&2; exit 1");
  REQUIRE(ends_with(r.stderr_tail, rotation::k_truncation_mark));
  const auto body = r.stderr_tail.substr(0, r.stderr_tail.size() - rotation::k_truncation_mark.size());
  CHECK(body.size() % 3 == 0);
  CHECK(body.substr(body.size() - 3) == "\u20ac");
}

TEST_CASE("rotation hook gets the current value on stdin")
{
  const std::string value = "current-value\nsecond line\n";
  auto r = run("cat", value);
  CHECK(r.status == Status::ok);
  CHECK(r.stdout_data == value);
}

TEST_CASE("rotation hook echoing 1 MiB of stdin back gets it all (exactly the cap)")
{
  std::string value(rotation::k_max_stdout, 'v');
  value.back() = 'w';
  auto r = run("cat", value);
  CHECK(r.status == Status::ok);
  CHECK(r.stdout_data.size() == value.size());
  CHECK(r.stdout_data == value);
}

TEST_CASE("rotation hook sees SECRET_NAME in its environment")
{
  auto r = run_hook("printf %s \"$SECRET_NAME\"", "db/password", "", 10s);
  CHECK(r.status == Status::ok);
  CHECK(r.stdout_data == "db/password");
}

TEST_CASE("rotation hook that does not read 1 MiB of stdin still works")
{
  const std::string value(1024 * 1024, 'x');
  // The test binary does not ignore SIGPIPE: a stray one would kill it.
  SUBCASE("exits at once")
  {
    auto r = run("echo done", value);
    CHECK(r.status == Status::ok);
    CHECK(r.stdout_data == "done\n");
  }
  SUBCASE("stays alive with a full pipe for a while")
  {
    auto r = run("sleep 0.2; echo done", value);
    CHECK(r.status == Status::ok);
    CHECK(r.stdout_data == "done\n");
  }
  SUBCASE("reads a little, then closes stdin")
  {
    auto r = run("head -c 5; exec <&-; sleep 0.1", value);
    CHECK(r.status == Status::ok);
    CHECK(r.stdout_data == "xxxxx");
  }
  CHECK_FALSE(sigpipe_pending());
  CHECK_FALSE(sigpipe_blocked());
}

TEST_CASE("rotation hook starts with default signal dispositions and an empty mask")
{
  // The daemon ignores SIGPIPE; a hook must not inherit that.
  struct sigaction ignore{};
  struct sigaction old_action{};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, &old_action);
  sigset_t term;
  sigset_t old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old_mask);

  auto r = run("grep -E '^Sig(Ign|Blk)' /proc/self/status");

  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_action, nullptr);
  REQUIRE(r.status == Status::ok);
  // Bits 0..30 are signals 1..31. glibc's posix_spawn ignores its own
  // internal real-time signals (32, 33) in the child, which is harmless.
  const auto blk = r.stdout_data.find("SigBlk:\t");
  const auto ign = r.stdout_data.find("SigIgn:\t");
  REQUIRE(blk != std::string::npos);
  REQUIRE(ign != std::string::npos);
  constexpr unsigned long long k_standard_signals = 0x7fffffffULL;
  CHECK((std::stoull(r.stdout_data.substr(blk + 8, 16), nullptr, 16) & k_standard_signals) == 0);
  CHECK((std::stoull(r.stdout_data.substr(ign + 8, 16), nullptr, 16) & k_standard_signals) == 0);
}

TEST_CASE("rotation hook sleeping past its timeout is ended by SIGTERM")
{
  const auto t0 = Clock::now();
  auto r = run("echo early; sleep 30", {}, 300ms);
  CHECK(Clock::now() - t0 < k_prompt);
  CHECK(r.status == Status::timed_out);
  CHECK(r.signal == SIGTERM);
  CHECK(r.exit_code == -1);
  CHECK(r.stdout_data.empty());
  CHECK(r.error.find("timed out after 300ms") == 0);
  CHECK(r.elapsed >= 300ms);
}

TEST_CASE("rotation hook ignoring SIGTERM is killed by SIGKILL after the grace")
{
  const auto t0 = Clock::now();
  auto r = run("trap '' TERM; sleep 30", {}, 300ms, 300ms);
  CHECK(Clock::now() - t0 < k_prompt);
  CHECK(r.status == Status::timed_out);
  CHECK(r.signal == SIGKILL);
  CHECK(r.elapsed >= 600ms);
}

TEST_CASE("rotation hook whose grandchild holds stdout returns promptly and the grandchild dies")
{
  const auto t0 = Clock::now();
  auto r = run("sleep 30 & echo $!");
  CHECK(Clock::now() - t0 < k_prompt);
  REQUIRE(r.status == Status::ok);
  const pid_t grandchild = std::stoi(trim(r.stdout_data));
  REQUIRE(grandchild > 1);
  CHECK(gone_within(grandchild, k_prompt));
}

TEST_CASE("rotation hook's background jobs die with it even without its pipes")
{
  auto r = run("sleep 30 >/dev/null 2>&1 </dev/null & echo $!");
  REQUIRE(r.status == Status::ok);
  const pid_t grandchild = std::stoi(trim(r.stdout_data));
  REQUIRE(grandchild > 1);
  CHECK(gone_within(grandchild, k_prompt));
}

TEST_CASE("rotation hook timing out takes its grandchildren with it")
{
  auto r = run("sleep 30 & echo $! >&2; sleep 30", {}, 300ms);
  CHECK(r.status == Status::timed_out);
  const pid_t grandchild = std::stoi(trim(r.stderr_tail));
  REQUIRE(grandchild > 1);
  CHECK(gone_within(grandchild, k_prompt));
}

TEST_CASE("rotation hook writing 200 KiB to stdout and stderr at once does not deadlock")
{
  const auto t0 = Clock::now();
  auto r = run("i=0; while [ $i -lt 200 ]; do printf '%1024s' o; printf '%1024s' e >&2; i=$((i+1)); done");
  CHECK(Clock::now() - t0 < k_prompt);
  CHECK(r.status == Status::ok);
  CHECK(r.stdout_data.size() == 200 * 1024);
  CHECK(ends_with(r.stderr_tail, rotation::k_truncation_mark));
}

TEST_CASE("rotation hook printing more than 1 MiB fails as output too large")
{
  SUBCASE("one byte over")
  {
    auto r = run("head -c 1048577 /dev/zero");
    CHECK(r.status == Status::failed);
    CHECK(r.error == "output too large (over 1 MiB)");
    CHECK(r.stdout_data.empty());
  }
  SUBCASE("without end")
  {
    const auto t0 = Clock::now();
    auto r = run("yes");
    CHECK(Clock::now() - t0 < k_prompt);
    CHECK(r.status == Status::failed);
    CHECK(r.error == "output too large (over 1 MiB)");
    CHECK(r.stdout_data.empty());
  }
}

TEST_CASE("rotation hook killed by a signal fails and names it")
{
  auto r = run("kill -9 $$");
  CHECK(r.status == Status::failed);
  CHECK(r.signal == SIGKILL);
  CHECK(r.exit_code == -1);
  CHECK(r.error == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("rotation hook naming a missing program fails with the shell's 127")
{
  auto r = run("/nonexistent/rotate-me");
  CHECK(r.status == Status::failed);
  CHECK(r.exit_code == 127);
  CHECK_FALSE(r.stderr_tail.empty());
}

TEST_CASE("rotation hooks run in parallel threads keep to their own pipes")
{
  constexpr int k_hooks = 4;
  std::vector<HookResult> results(k_hooks);
  std::vector<std::thread> threads;
  for (int i = 0; i < k_hooks; ++i) {
    threads.emplace_back([i, &results] {
      const std::string value = "value-" + std::to_string(i);
      results[static_cast<std::size_t>(i)] =
        run_hook("sleep 0.2; cat; printf ' %s' \"$SECRET_NAME\"", "name-" + std::to_string(i), value, 10s);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < k_hooks; ++i) {
    const auto& r = results[static_cast<std::size_t>(i)];
    CHECK(r.status == Status::ok);
    CHECK(r.stdout_data == "value-" + std::to_string(i) + " name-" + std::to_string(i));
  }
}

TEST_CASE("rotation hooks leave no descriptor open behind them")
{
  auto open_fds = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
      ++n;
    }
    return n;
  };
  const auto before = open_fds();
  run("echo ok");
  run("yes");
  run("sleep 30", "value", 100ms, 100ms);
  run("sleep 30 & echo $!");
  CHECK(open_fds() == before);
}

TEST_CASE("rotation status names")
{
  CHECK(std::string(rotation::to_string(Status::ok)) == "ok");
  CHECK(std::string(rotation::to_string(Status::timed_out)) == "timed_out");
  CHECK(std::string(rotation::to_string(Status::spawn_failed)) == "spawn_failed");
}

namespace {

// Where this machine lets a hook have a cgroup of its own (root, or a
// delegated subtree); the fallback runs everywhere.
bool cgroups_available()
{
  std::string why_not;
  return rotation::HookCgroup::create(why_not).has_value();
}

std::vector<rotation::Containment> containments()
{
  std::vector<rotation::Containment> all{rotation::Containment::reaper_only};
  if (cgroups_available()) {
    all.push_back(rotation::Containment::automatic);
  } else {
    MESSAGE("no delegated cgroup v2 subtree here: only the reaper fallback is tested");
  }
  return all;
}

const char* name_of(rotation::Containment c)
{
  return c == rotation::Containment::automatic ? "cgroup" : "reaper";
}

HookResult run_contained(const std::string& command, rotation::Containment c, std::chrono::milliseconds timeout = 10s)
{
  auto r = run_hook(command, "test/secret", {}, timeout, 300ms, c);
  CHECK(std::string(r.containment) == name_of(c));
  CHECK(r.survivors == 0);
  return r;
}

std::vector<pid_t> pids_in(const std::string& text)
{
  std::vector<pid_t> pids;
  std::istringstream in(text);
  for (long pid = 0; in >> pid;) {
    pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
}

} // namespace

TEST_CASE("rotation hook's descendants that left its session are dead when run_hook returns")
{
  for (const auto c : containments()) {
    CAPTURE(name_of(c));
    // setsid: a new session and process group; the double fork: an orphan
    // reparented away from the hook; both with their own stdio.
    auto r = run_contained("setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!; "
                           "(sh -c 'sleep 1000 >/dev/null 2>&1 </dev/null & echo $!' &) ; sleep 0.2",
                           c);
    REQUIRE(r.status == Status::ok);
    const auto pids = pids_in(r.stdout_data);
    REQUIRE(pids.size() == 2);
    for (const pid_t pid : pids) {
      CAPTURE(pid);
      // No waiting: run_hook returns after the reaper reaped them.
      CHECK(process_gone(pid));
    }
  }
}

TEST_CASE("rotation hook timing out with a setsid daemon leaves nothing behind")
{
  for (const auto c : containments()) {
    CAPTURE(name_of(c));
    auto r = run_contained("setsid sh -c 'trap \"\" TERM; sleep 1000' >/dev/null 2>&1 </dev/null & echo $! >&2; "
                           "sleep 1000",
                           c, 300ms);
    CHECK(r.status == Status::timed_out);
    const auto pids = pids_in(r.stderr_tail);
    REQUIRE(pids.size() == 1);
    CHECK(process_gone(pids[0]));
  }
}

TEST_CASE("rotation hook runs in its own cgroup where one can be made, and the cgroup goes away")
{
  if (!cgroups_available()) {
    MESSAGE("skipped: no delegated cgroup v2 subtree here");
    return;
  }
  auto r = run_contained("cat /proc/self/cgroup", rotation::Containment::automatic);
  REQUIRE(r.status == Status::ok);
  const auto at = r.stdout_data.find("0::");
  REQUIRE(at != std::string::npos);
  const auto line = trim(r.stdout_data.substr(at + 3, r.stdout_data.find('\n', at) - at - 3));
  const auto leaf = line.substr(line.rfind('/') + 1);
  CHECK(leaf.starts_with("agent-secrets-hook-" + std::to_string(::getpid()) + "-"));
  CHECK_FALSE(std::filesystem::exists(rotation::own_cgroup_dir() + "/" + leaf));

  auto fallback = run_contained("cat /proc/self/cgroup", rotation::Containment::reaper_only);
  CHECK(fallback.stdout_data.find("agent-secrets-hook-") == std::string::npos);
}

TEST_CASE("rotation hook's failing stderr holds no form of the old or the new value")
{
  const std::string old_value = "old-SECRET-value-5f1e";
  SUBCASE("the old value from stdin: raw, base64 and hex")
  {
    auto r = run_hook("v=$(cat); printf '%s\\n' \"$v\" >&2; printf %s \"$v\" | base64 >&2; "
                      "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n' >&2; echo >&2; exit 1",
                      "k", old_value, 10s);
    CHECK(r.status == Status::failed);
    CHECK(r.stderr_tail.find("[redacted]") != std::string::npos);
    CHECK(r.stderr_tail.find(old_value) == std::string::npos);
    CHECK(r.stderr_tail.find("b2xkLVNFQ1JFVC12YWx1ZS01ZjFl") == std::string::npos);
    CHECK(r.stderr_tail.find("6f6c642d534543524554") == std::string::npos);
  }
  SUBCASE("the new value, printed on stdout and on stderr")
  {
    auto r = run_hook("echo NEW-secret-98ab77; echo 'got NEW-secret-98ab77 from vault' >&2; exit 1", "k",
                      old_value, 10s);
    CHECK(r.status == Status::failed);
    CHECK(r.stderr_tail == "got [redacted] from vault\n");
  }
  SUBCASE("a successful hook's stderr too")
  {
    auto r = run_hook("echo NEW-secret-98ab77; echo 'rotated to NEW-secret-98ab77' >&2", "k", old_value, 10s);
    CHECK(r.status == Status::ok);
    // The stdout as printed is one of the values: its newline goes with it.
    CHECK(r.stderr_tail == "rotated to [redacted]");
  }
}

TEST_CASE("rotation hook's stderr is redacted before it is cut at 4 KiB")
{
  const std::string value = "boundary-secret-0123456789";
  // The value starts 10 bytes before the cut point.
  const auto pad = rotation::k_max_stderr - rotation::k_truncation_mark.size() - 10;
  auto r = run_hook("head -c " + std::to_string(pad) + " /dev/zero | tr '\\0' p >&2; cat >&2; "
                    "head -c 10000 /dev/zero | tr '\\0' q >&2; exit 1",
                    "k", value, 10s);
  REQUIRE(ends_with(r.stderr_tail, rotation::k_truncation_mark));
  CHECK(r.stderr_tail.find("bound") == std::string::npos);
  CHECK(r.stderr_tail.find("[redac") != std::string::npos);
}

TEST_CASE("rotation redact_stderr: a value too long to capture loses the part before the cut")
{
  // 100 KiB of value: longer than the capture margin, so it cannot be
  // replaced whole; what is there of its beginning at the cut must go.
  std::string value(100 * 1024, 'x');
  for (std::size_t i = 0; i < value.size(); ++i) {
    value[i] = static_cast<char>('a' + (i * 7) % 26);
  }
  std::string captured(4000, '.');
  captured += value.substr(0, rotation::k_stderr_capture - captured.size());
  const auto out = rotation::redact_stderr(captured, true, {value});
  CHECK(captured.empty());
  CHECK(ends_with(out, rotation::k_truncation_mark));
  CHECK(out.substr(0, out.size() - rotation::k_truncation_mark.size()) == std::string(4000, '.'));
}

TEST_CASE("rotation partial_form_at_end finds the longest end that begins a form")
{
  CHECK(rotation::partial_form_at_end("log: abcab", "abcabd") == 5);
  CHECK(rotation::partial_form_at_end("log: aaaa", "aaab") == 3);
  CHECK(rotation::partial_form_at_end("log: xyz", "abc") == 0);
  CHECK(rotation::partial_form_at_end("", "abc") == 0);
  CHECK(rotation::partial_form_at_end("abc", "") == 0);
}
