// bench_loadgen: the load generator and floor probes behind `make bench`
// (bench/run.py drives it). Each mode does one measurement and prints one JSON
// object on stdout; times are in microseconds.
//
//   floor-rtt    --iters N                       Unix-socket ping-pong, two processes
//   floor-fsync  --dir D --iters N               write(200 bytes, O_APPEND) + fdatasync
//   lease        --socket S --secret NAME --clients C --mode persistent|connect
//                --seconds T [--ttl 1h]          closed-loop durable secrets.lease;
//                                                then revokes what it leased (untimed)
//   fill         --socket S --secret NAME --count N [--ttl 24h]
//                                                pipelined leases to reach N live leases
//   call         --socket S --method M [--params JSON]   one timed RPC
//   spawn        --runs N -- ARGV...             wall time of whole processes
//   start        --socket S --log F -- ARGV...   spawn the daemon, time until
//                                                secrets.status answers, VmRSS, SIGTERM
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <optional>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double us_since(Clock::time_point t0)
{
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

[[noreturn]] void fail(const std::string& what)
{
  throw std::runtime_error(what + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

json summary(std::vector<double> v)
{
  if (v.empty()) {
    return {{"n", 0}};
  }
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))]; };
  return {{"n", v.size()}, {"p50", pct(0.50)}, {"p99", pct(0.99)}, {"min", v.front()}, {"max", v.back()}};
}

// --name value options; everything after "--" is argv.
struct Args
{
  std::map<std::string, std::string> opt;
  std::vector<std::string> rest;

  std::string get(const std::string& k, const std::string& fallback = {}) const
  {
    auto it = opt.find(k);
    if (it != opt.end()) {
      return it->second;
    }
    if (fallback.empty()) {
      throw std::runtime_error("missing --" + k);
    }
    return fallback;
  }
  long num(const std::string& k, const std::string& fallback = {}) const { return std::stol(get(k, fallback)); }
};

// A line-oriented Unix-socket client connection.
class Conn
{
public:
  explicit Conn(const std::string& path)
  {
    m_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!m_fd) {
      fail("socket");
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
      throw std::runtime_error("socket path too long: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (::connect(m_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      fail("connect " + path);
    }
  }

  void send(std::string_view data) { util::write_all(m_fd.get(), data, "socket"); }

  // The next line, without '\n'.
  std::string read_line()
  {
    for (;;) {
      if (auto nl = m_buf.find('\n', m_pos); nl != std::string::npos) {
        std::string line = m_buf.substr(m_pos, nl - m_pos);
        m_pos = nl + 1;
        if (m_pos == m_buf.size()) {
          m_buf.clear();
          m_pos = 0;
        }
        return line;
      }
      char chunk[65536];
      const ssize_t n = ::read(m_fd.get(), chunk, sizeof(chunk));
      if (n == 0) {
        errno = 0;
        fail("the daemon closed the connection");
      }
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        fail("read");
      }
      m_buf.append(chunk, static_cast<size_t>(n));
    }
  }

private:
  util::UniqueFd m_fd;
  std::string m_buf;
  size_t m_pos = 0;
};

std::string request(const std::string& method, const json& params, uint64_t id)
{
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump() + "\n";
}

// The lease_id of a successful secrets.lease reply; throws on an error reply.
std::string lease_id_of(const std::string& reply)
{
  static const std::string key = "\"lease_id\":\"";
  const auto at = reply.find(key);
  if (reply.find("\"error\":") != std::string::npos || at == std::string::npos) {
    errno = 0;
    fail("lease failed: " + reply.substr(0, 300));
  }
  const auto start = at + key.size();
  return reply.substr(start, reply.find('"', start) - start);
}

// Sends `requests` over one connection with up to `window` in flight; returns the replies.
std::vector<std::string> pipelined(const std::string& socket, const std::vector<std::string>& requests, size_t window)
{
  Conn c(socket);
  std::vector<std::string> replies;
  replies.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); i += window) {
    const size_t end = std::min(requests.size(), i + window);
    std::string batch;
    for (size_t j = i; j < end; ++j) {
      batch += requests[j];
    }
    c.send(batch);
    for (size_t j = i; j < end; ++j) {
      replies.push_back(c.read_line());
    }
  }
  return replies;
}

// Revokes ids over 4 pipelined connections.
void revoke_ids(const std::string& socket, const std::vector<std::string>& ids)
{
  constexpr size_t k_conns = 4;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < k_conns; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::string> reqs;
      for (size_t i = t; i < ids.size(); i += k_conns) {
        reqs.push_back(request("secrets.revoke", {{"lease_id", ids[i]}}, i + 1));
      }
      for (const auto& r : pipelined(socket, reqs, 512)) {
        if (r.find("\"error\":") != std::string::npos) {
          std::fprintf(stderr, "revoke failed: %s\n", r.substr(0, 300).c_str());
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
}

json mode_floor_rtt(const Args& a)
{
  const long iters = a.num("iters", "20000");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    fail("socketpair");
  }
  const std::string msg(200, 'x'); // about a lease request's size
  const pid_t child = ::fork();
  if (child < 0) {
    fail("fork");
  }
  if (child == 0) {
    ::close(sv[0]);
    char buf[256];
    for (;;) {
      size_t got = 0;
      while (got < msg.size()) {
        const ssize_t n = ::read(sv[1], buf, msg.size() - got);
        if (n <= 0) {
          ::_exit(0);
        }
        got += static_cast<size_t>(n);
      }
      if (::write(sv[1], buf, msg.size()) != static_cast<ssize_t>(msg.size())) {
        ::_exit(1);
      }
    }
  }
  ::close(sv[1]);
  std::vector<double> rtts;
  rtts.reserve(static_cast<size_t>(iters));
  char buf[256];
  for (long i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    util::write_all(sv[0], msg, "socketpair");
    size_t got = 0;
    while (got < msg.size()) {
      const ssize_t n = ::read(sv[0], buf, msg.size() - got);
      if (n <= 0) {
        fail("read socketpair");
      }
      got += static_cast<size_t>(n);
    }
    rtts.push_back(us_since(t0));
  }
  ::close(sv[0]);
  ::waitpid(child, nullptr, 0);
  return {{"rtt_us", summary(std::move(rtts))}};
}

json mode_floor_fsync(const Args& a)
{
  const long iters = a.num("iters", "200");
  const std::string path = a.get("dir") + "/fsync-probe.log";
  util::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) {
    fail("open " + path);
  }
  std::string line(199, 'x');
  line += '\n';
  std::vector<double> times;
  for (long i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    util::write_all(fd.get(), line, path);
    if (::fdatasync(fd.get()) != 0) {
      fail("fdatasync " + path);
    }
    times.push_back(us_since(t0));
  }
  ::unlink(path.c_str());
  return {{"fsync_us", summary(std::move(times))}};
}

json mode_lease(const Args& a)
{
  const std::string socket = a.get("socket");
  const std::string secret = a.get("secret");
  const std::string ttl = a.get("ttl", "1h");
  const auto clients = static_cast<size_t>(a.num("clients"));
  const bool persistent = a.get("mode") == "persistent";
  const double seconds = std::stod(a.get("seconds"));
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(clients);
  std::vector<std::vector<std::string>> ids(clients);
  std::vector<std::string> errors(clients);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (size_t t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::optional<Conn> conn;
        const json params = {{"secret_name", secret}, {"client_id", "bench-" + std::to_string(t)}, {"ttl", ttl}};
        for (uint64_t id = 1; !stop.load(std::memory_order_relaxed); ++id) {
          const std::string req = request("secrets.lease", params, id);
          const auto start = Clock::now();
          if (!persistent || !conn) {
            conn.emplace(socket);
          }
          conn->send(req);
          ids[t].push_back(lease_id_of(conn->read_line()));
          if (!persistent) {
            conn.reset();
          }
          lat[t].push_back(us_since(start));
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        stop = true;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) {
    t.join();
  }
  const double elapsed = us_since(t0);
  for (const auto& e : errors) {
    if (!e.empty()) {
      throw std::runtime_error(e);
    }
  }
  std::vector<double> all;
  std::vector<std::string> all_ids;
  for (size_t t = 0; t < clients; ++t) {
    all.insert(all.end(), lat[t].begin(), lat[t].end());
    all_ids.insert(all_ids.end(), ids[t].begin(), ids[t].end());
  }
  // Back to the live-lease level the run started at (untimed).
  revoke_ids(socket, all_ids);
  return {{"leases", all.size()},
          {"elapsed_us", elapsed},
          {"per_second", static_cast<double>(all.size()) / (elapsed / 1e6)},
          {"latency_us", summary(std::move(all))}};
}

json mode_fill(const Args& a)
{
  const std::string socket = a.get("socket");
  const auto count = static_cast<size_t>(a.num("count"));
  const json params = {{"secret_name", a.get("secret")}, {"client_id", "bench-fill"}, {"ttl", a.get("ttl", "24h")}};
  constexpr size_t k_conns = 4;
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(k_conns);
  for (size_t t = 0; t < k_conns; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::vector<std::string> reqs;
        for (size_t i = t; i < count; i += k_conns) {
          reqs.push_back(request("secrets.lease", params, i + 1));
        }
        for (const auto& r : pipelined(socket, reqs, 512)) {
          lease_id_of(r);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    if (!e.empty()) {
      throw std::runtime_error(e);
    }
  }
  return {{"leased", count}, {"elapsed_us", us_since(t0)}};
}

json mode_call(const Args& a)
{
  const json params = json::parse(a.get("params", "{}"));
  Conn c(a.get("socket"));
  const auto t0 = Clock::now();
  c.send(request(a.get("method"), params, 1));
  const std::string reply = c.read_line();
  const double us = us_since(t0);
  const json r = json::parse(reply);
  if (r.contains("error")) {
    errno = 0;
    fail(a.get("method") + " failed: " + r["error"].dump());
  }
  json result = r["result"];
  if (result.is_object()) {
    result.erase("value");
  }
  return {{"us", us}, {"result", result}};
}

std::vector<char*> c_argv(const std::vector<std::string>& argv)
{
  std::vector<char*> out;
  for (const auto& s : argv) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

// posix_spawn with stdin from /dev/null and stdout/stderr to `out` (or /dev/null).
pid_t spawn(const std::vector<std::string>& argv, const std::string& out, bool new_session)
{
  if (argv.empty()) {
    throw std::runtime_error("nothing to run: give the command after --");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (new_session) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  }
  pid_t pid = 0;
  auto args = c_argv(argv);
  const int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    fail("spawn " + argv[0]);
  }
  return pid;
}

int wait_exit(pid_t pid)
{
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      fail("waitpid");
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

json mode_spawn(const Args& a)
{
  const long runs = a.num("runs", "200");
  std::vector<double> times;
  for (long i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    const int rc = wait_exit(spawn(a.rest, "/dev/null", false));
    times.push_back(us_since(t0));
    if (rc != 0) {
      errno = 0;
      fail(a.rest[0] + " exited with " + std::to_string(rc));
    }
  }
  return {{"wall_us", summary(std::move(times))}};
}

long vm_rss_kib(pid_t pid)
{
  const auto text = util::read_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = text.find("VmRSS:");
  return at == std::string::npos ? -1 : std::stol(text.substr(at + 6));
}

json mode_start(const Args& a)
{
  const std::string socket = a.get("socket");
  const auto t0 = Clock::now();
  const pid_t pid = spawn(a.rest, a.get("log"), true);
  const std::string want = "\"pid\":" + std::to_string(pid);
  double ready_us = -1;
  while (us_since(t0) < 30e6) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      errno = 0;
      fail("secrets serve exited before it was ready; see " + a.get("log"));
    }
    try {
      Conn c(socket);
      c.send(request("secrets.status", json::object(), 1));
      if (c.read_line().find(want) != std::string::npos) {
        ready_us = us_since(t0);
        break;
      }
    } catch (const std::exception&) {
      // not listening yet (or a stale socket): poll again
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300)); // idle
  const long rss = vm_rss_kib(pid);
  ::kill(pid, SIGTERM);
  const int rc = wait_exit(pid);
  if (ready_us < 0) {
    errno = 0;
    fail("secrets serve was not ready within 30s");
  }
  return {{"ready_us", ready_us}, {"idle_rss_kib", rss}, {"exit", rc}};
}

} // namespace

int main(int argc, char** argv)
{
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_loadgen MODE [--opt value]... [-- argv]\n");
    return 2;
  }
  const std::string mode = argv[1];
  Args a;
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--") {
      a.rest.assign(argv + i + 1, argv + argc);
      break;
    }
    if (!s.starts_with("--") || i + 1 >= argc) {
      std::fprintf(stderr, "bench_loadgen: bad argument %s\n", s.c_str());
      return 2;
    }
    a.opt[s.substr(2)] = argv[++i];
  }
  std::signal(SIGPIPE, SIG_IGN);
  const std::map<std::string, json (*)(const Args&)> modes = {
    {"floor-rtt", mode_floor_rtt}, {"floor-fsync", mode_floor_fsync}, {"lease", mode_lease},
    {"fill", mode_fill},           {"call", mode_call},               {"spawn", mode_spawn},
    {"start", mode_start}};
  const auto it = modes.find(mode);
  if (it == modes.end()) {
    std::fprintf(stderr, "bench_loadgen: unknown mode %s\n", mode.c_str());
    return 2;
  }
  try {
    std::printf("%s\n", it->second(a).dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loadgen %s: %s\n", mode.c_str(), e.what());
    return 1;
  }
  return 0;
}
