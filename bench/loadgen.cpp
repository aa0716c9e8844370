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
//   upstream     --port-file F [--port P]        a minimal HTTP/1.1 keep-alive server on
//                                                127.0.0.1 (the proxy bench's upstream);
//                                                on SIGTERM prints what it served
//   relay        --port-file F --to PORT         copies bytes between each connection and
//                                                its own to 127.0.0.1:PORT (the proxy floor)
//   http         --target HOST:PORT --path P [--header 'K: V'] --clients C
//                --seconds T [--warmup 0.2]      closed-loop GETs, one keep-alive
//                                                connection per client
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
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

// ---------------------------------------------------------------- HTTP (the proxy bench)

// A fixed 100-byte JSON body, about the size of a small API answer; its size is
// known so the client can check that every answer arrived whole.
constexpr std::string_view k_upstream_body =
  R"({"ok":true,"bench":"agent-secrets proxy upstream","pad":"0123456789012345678901234567890123456789"})"
  "\n";

std::string lowercase(std::string s)
{
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The value of header `name` (lowercase, with its colon) in a lowercased head, or "".
std::string header_value(const std::string& head, const std::string& name)
{
  const auto at = head.find("\r\n" + name);
  if (at == std::string::npos) {
    return {};
  }
  const auto start = head.find_first_not_of(" \t", at + 2 + name.size());
  const auto end = head.find("\r\n", at + 2);
  return start == std::string::npos || start >= end ? std::string() : head.substr(start, end - start);
}

// One client connection to the upstream, owned by the server's event loop.
struct Peer
{
  util::UniqueFd fd;
  std::string in;
  std::string out;
  bool close_after_write = false;
  bool watching_out = false; // relay: EPOLLOUT is in its epoll events
};

// Answers every complete request in p.in; false when the request is one we cannot frame.
bool answer_requests(Peer& p, uint64_t& served)
{
  static const std::string response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                      std::to_string(k_upstream_body.size()) + "\r\n\r\n" +
                                      std::string(k_upstream_body);
  size_t pos = 0;
  for (;;) {
    const auto end = p.in.find("\r\n\r\n", pos);
    if (end == std::string::npos) {
      break;
    }
    const std::string head = lowercase(p.in.substr(pos, end + 2 - pos));
    if (!header_value(head, "transfer-encoding:").empty()) {
      return false; // the bench only sends GETs; a chunked body here is a bug
    }
    const std::string length = header_value(head, "content-length:");
    const size_t body = length.empty() ? 0 : std::stoul(length);
    if (p.in.size() < end + 4 + body) {
      break;
    }
    pos = end + 4 + body;
    p.out += response;
    ++served;
    const std::string connection = header_value(head, "connection:");
    const bool http10 = head.substr(0, head.find("\r\n")).ends_with("http/1.0");
    if (connection == "close" || (http10 && connection != "keep-alive")) {
      p.close_after_write = true;
      break;
    }
  }
  p.in.erase(0, pos);
  return true;
}

// Writes what it can of p.out; false when the peer is gone.
bool flush_peer(Peer& p)
{
  while (!p.out.empty()) {
    const ssize_t n = ::send(p.fd.get(), p.out.data(), p.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      return errno == EAGAIN || errno == EINTR;
    }
    p.out.erase(0, static_cast<size_t>(n));
  }
  return true;
}

// A loopback listener with its epoll set and a signalfd for SIGTERM/SIGINT,
// its port published in --port-file.
struct Listening
{
  util::UniqueFd listener;
  util::UniqueFd sig;
  util::UniqueFd ep;

  void watch(int fd, uint32_t events, int op) const
  {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), op, fd, &ev) != 0) {
      fail("epoll_ctl");
    }
  }
  // Ready events, at least one; EINTR is retried.
  int wait(epoll_event* events, int max) const
  {
    for (;;) {
      const int n = ::epoll_wait(ep.get(), events, max, -1);
      if (n >= 0) {
        return n;
      }
      if (errno != EINTR) {
        fail("epoll_wait");
      }
    }
  }
  // The next accepted connection, non-blocking with TCP_NODELAY; -1 when none is waiting.
  int accept_one() const
  {
    const int c = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      const int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return c;
  }
};

Listening listen_loopback(const Args& a)
{
  Listening l;
  const std::string port_file = a.get("port-file");
  auto& listener = l.listener;
  listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener) {
    fail("socket");
  }
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(a.num("port", "0")));
  socklen_t len = sizeof(addr);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener.get(), 1024) != 0 || ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fail("listen on 127.0.0.1");
  }
  // SIGTERM arrives as a readable fd, so the loop can report before it exits.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  l.sig.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  l.ep.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!l.sig || !l.ep) {
    fail("signalfd/epoll");
  }
  l.watch(listener.get(), EPOLLIN, EPOLL_CTL_ADD);
  l.watch(l.sig.get(), EPOLLIN, EPOLL_CTL_ADD);
  // The port is published by rename, so a reader never sees half a number.
  const std::string tmp = port_file + ".tmp";
  util::UniqueFd pf(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!pf) {
    fail("open " + tmp);
  }
  util::write_all(pf.get(), std::to_string(ntohs(addr.sin_port)) + "\n", tmp);
  pf = util::UniqueFd();
  if (::rename(tmp.c_str(), port_file.c_str()) != 0) {
    fail("rename " + tmp);
  }
  return l;
}

// A single-threaded epoll server: one thread costs the upstream a few
// microseconds of CPU per request, so on a small machine it leaves the cores to
// the client and the proxy being measured.
json mode_upstream(const Args& a)
{
  const Listening l = listen_loopback(a);
  const auto watch = [&](int fd, uint32_t events, int op) { l.watch(fd, events, op); };
  std::unordered_map<int, Peer> peers;
  uint64_t served = 0;
  uint64_t accepted = 0;
  epoll_event events[256];
  for (;;) {
    const int n = l.wait(events, 256);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == l.sig.get()) {
        return {{"requests", served}, {"connections", accepted}};
      }
      if (fd == l.listener.get()) {
        for (int c; (c = l.accept_one()) >= 0;) {
          peers[c].fd = util::UniqueFd(c);
          ++accepted;
          watch(c, EPOLLIN, EPOLL_CTL_ADD);
        }
        continue;
      }
      auto it = peers.find(fd);
      if (it == peers.end()) {
        continue;
      }
      Peer& p = it->second;
      bool alive = true;
      if (events[i].events & EPOLLIN) {
        char chunk[16384];
        const ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
        if (got > 0) {
          p.in.append(chunk, static_cast<size_t>(got));
          alive = answer_requests(p, served);
        } else {
          alive = got < 0 && (errno == EAGAIN || errno == EINTR);
        }
      }
      const bool had_out = !p.out.empty();
      alive = alive && flush_peer(p);
      if (alive && p.out.empty() && p.close_after_write) {
        alive = false;
      }
      if (!alive) {
        peers.erase(it); // closing the fd also drops it from the epoll set
        continue;
      }
      // Wait for writability only while a reply is stuck behind a full socket buffer.
      if (had_out || !p.out.empty()) {
        watch(fd, p.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
      }
    }
  }
}

// The floor under any proxy: copies bytes between each client connection and
// its own connection to --to, one thread, no parsing, no credential, no audit.
json mode_relay(const Args& a)
{
  const Listening l = listen_loopback(a);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<uint16_t>(a.num("to")));
  std::unordered_map<int, Peer> peers; // both ends of every pair
  std::unordered_map<int, int> partner;
  uint64_t accepted = 0;
  epoll_event events[256];
  for (;;) {
    const int n = l.wait(events, 256);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == l.sig.get()) {
        return {{"connections", accepted}};
      }
      if (fd == l.listener.get()) {
        for (int c; (c = l.accept_one()) >= 0;) {
          util::UniqueFd u(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
          if (!u || ::connect(u.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) {
            fail("connect to --to");
          }
          const int one = 1;
          ::setsockopt(u.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          ::fcntl(u.get(), F_SETFL, O_NONBLOCK);
          const int uf = u.get();
          peers[c].fd = util::UniqueFd(c);
          peers[uf].fd = std::move(u);
          partner[c] = uf;
          partner[uf] = c;
          l.watch(c, EPOLLIN, EPOLL_CTL_ADD);
          l.watch(uf, EPOLLIN, EPOLL_CTL_ADD);
          ++accepted;
        }
        continue;
      }
      if (!peers.contains(fd)) {
        continue; // closed earlier in this batch with its partner
      }
      const int other = partner.at(fd);
      Peer& q = peers.at(other);
      bool alive = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char chunk[16384];
        const ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
        if (got > 0) {
          q.out.append(chunk, static_cast<size_t>(got));
        } else {
          alive = got < 0 && (errno == EAGAIN || errno == EINTR);
        }
      }
      alive = alive && flush_peer(q) && flush_peer(peers.at(fd));
      if (!alive) {
        peers.erase(fd);
        peers.erase(other);
        partner.erase(fd);
        partner.erase(other);
        continue;
      }
      // Writability matters only while bytes are stuck behind a full buffer.
      if (q.watching_out != !q.out.empty()) {
        q.watching_out = !q.out.empty();
        l.watch(other, q.watching_out ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
      }
    }
  }
}

// A keep-alive HTTP/1.1 client connection over TCP with a read buffer.
class HttpConn
{
public:
  HttpConn(const std::string& host, uint16_t port)
  {
    m_fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!m_fd) {
      fail("socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      errno = 0;
      fail("not an IPv4 address: " + host);
    }
    if (::connect(m_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      fail("connect " + host + ":" + std::to_string(port));
    }
    // Each request is one write; without this Nagle would hold it behind the previous ACK.
    const int one = 1;
    ::setsockopt(m_fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }

  void send(std::string_view data) { util::write_all(m_fd.get(), data, "socket"); }

  // Reads one whole response (Content-Length or chunked); returns its status.
  int read_response(size_t& body_bytes, bool& server_closes)
  {
    const std::string head = lowercase(take(until("\r\n\r\n") + 4));
    if (!head.starts_with("http/1.")) {
      errno = 0;
      fail("not an HTTP response: " + head.substr(0, 100));
    }
    const int status = std::stoi(head.substr(9, 3));
    server_closes = header_value(head, "connection:") == "close";
    body_bytes = 0;
    if (header_value(head, "transfer-encoding:") == "chunked") {
      for (;;) {
        const size_t size = std::stoul(take(until("\r\n") + 2), nullptr, 16);
        if (size == 0) {
          // Trailers, if any, end with an empty line.
          while (take(until("\r\n") + 2) != "\r\n") {
          }
          break;
        }
        need(size + 2);
        m_pos += size + 2;
        body_bytes += size;
      }
    } else if (const std::string length = header_value(head, "content-length:"); !length.empty()) {
      body_bytes = std::stoul(length);
      need(body_bytes);
      m_pos += body_bytes;
    } else {
      errno = 0;
      fail("a response without a length; the bench needs keep-alive");
    }
    if (m_pos == m_buf.size()) {
      m_buf.clear();
      m_pos = 0;
    }
    return status;
  }

private:
  // Offset from m_pos of the first `delim`, reading until it arrives.
  size_t until(std::string_view delim)
  {
    for (;;) {
      if (const auto at = m_buf.find(delim, m_pos); at != std::string::npos) {
        return at - m_pos;
      }
      fill();
    }
  }

  void need(size_t n)
  {
    while (m_buf.size() - m_pos < n) {
      fill();
    }
  }

  std::string take(size_t n)
  {
    need(n);
    std::string s = m_buf.substr(m_pos, n);
    m_pos += n;
    return s;
  }

  void fill()
  {
    char chunk[16384];
    for (;;) {
      const ssize_t n = ::read(m_fd.get(), chunk, sizeof(chunk));
      if (n > 0) {
        m_buf.append(chunk, static_cast<size_t>(n));
        return;
      }
      if (n == 0) {
        errno = 0;
        fail("the server closed the connection");
      }
      if (errno != EINTR) {
        fail("read");
      }
    }
  }

  util::UniqueFd m_fd;
  std::string m_buf;
  size_t m_pos = 0;
};

json mode_http(const Args& a)
{
  const std::string target = a.get("target");
  const auto colon = target.rfind(':');
  if (colon == std::string::npos) {
    throw std::runtime_error("--target must be HOST:PORT, not " + target);
  }
  const std::string host = target.substr(0, colon);
  const auto port = static_cast<uint16_t>(std::stoul(target.substr(colon + 1)));
  const auto clients = static_cast<size_t>(a.num("clients"));
  const double seconds = std::stod(a.get("seconds"));
  const double warmup = std::stod(a.get("warmup", "0.2"));
  std::string req = "GET " + a.get("path") + " HTTP/1.1\r\nHost: " + target + "\r\nAccept: application/json\r\n";
  if (const auto h = a.opt.find("header"); h != a.opt.end()) {
    req += h->second + "\r\n";
  }
  req += "\r\n";

  // Latencies count only after the warm-up, when every connection is open and
  // the proxy has its upstream connections, as a long-running client would see.
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(clients);
  std::vector<uint64_t> reconnects(clients, 0);
  std::vector<uint64_t> sent(clients, 0); // with the warm-up's, to divide a server's CPU time by
  std::vector<std::string> errors(clients);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::optional<HttpConn> conn;
        while (!stop.load(std::memory_order_relaxed)) {
          const bool timed = measuring.load(std::memory_order_relaxed);
          const auto start = Clock::now();
          if (!conn) {
            conn.emplace(host, port);
            reconnects[t] += timed ? 1 : 0;
          }
          conn->send(req);
          size_t body = 0;
          bool closes = false;
          const int status = conn->read_response(body, closes);
          if (status != 200 || body != k_upstream_body.size()) {
            errno = 0;
            fail("status " + std::to_string(status) + " with " + std::to_string(body) + " body bytes");
          }
          ++sent[t];
          if (closes) {
            conn.reset();
          }
          if (timed) {
            lat[t].push_back(us_since(start));
          }
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        stop = true;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  const auto t0 = Clock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const double elapsed = us_since(t0);
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    if (!e.empty()) {
      throw std::runtime_error(e);
    }
  }
  std::vector<double> all;
  uint64_t reconnected = 0;
  uint64_t all_sent = 0;
  for (size_t t = 0; t < clients; ++t) {
    all.insert(all.end(), lat[t].begin(), lat[t].end());
    reconnected += reconnects[t];
    all_sent += sent[t];
  }
  return {{"requests", all.size()},
          {"elapsed_us", elapsed},
          {"per_second", static_cast<double>(all.size()) / (elapsed / 1e6)},
          {"reconnects", reconnected},
          {"requests_with_warmup", all_sent},
          {"latency_us", summary(std::move(all))}};
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
    {"start", mode_start},         {"upstream", mode_upstream},       {"http", mode_http},
    {"relay", mode_relay}};
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
