#include "daemon/daemon.hpp"

#include "daemon/audit_chain.hpp"
#include "store/identity.hpp"
#include "daemon/session.hpp"
#include "daemon/snapshot.hpp"
#include "daemon/state.hpp"
#include "config/config.hpp"
#include "killswitch/heartbeat.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <dirent.h>
#include <fcntl.h>
#include <string.h> // strnlen
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace server {

namespace {


void harden_process()
{
  // Secrets live in this process's memory: no core dumps, no ptrace by peers.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::umask(077);
}

void setup_logging(const util::Paths& paths)
{
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(paths.log);
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("daemon", spdlog::sinks_init_list{file, console});
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  if (const char* level = std::getenv("AGENT_SECRETS_LOG_LEVEL")) {
    spdlog::set_level(spdlog::level::from_str(level));
  }
}

// Holds daemon.pid locked for the daemon's life: the lock, not the file's
// existence, says whether a daemon runs.
util::UniqueFd lock_pid_file(const util::Paths& paths)
{
  // O_NOFOLLOW: a symlink planted at daemon.pid must not make us truncate its target.
  util::UniqueFd fd(::open(paths.pid.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) {
    util::throw_errno("failed to open " + paths.pid);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    throw util::Error(util::Errc::io, "refusing to start: " + paths.pid + " is not a regular file of ours",
                      "rm " + paths.pid);
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    std::string pid = util::read_file_if_exists(paths.pid).value_or("");
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) {
      pid.pop_back();
    }
    throw util::Error(util::Errc::already_exists,
                      "a daemon is already running" + (pid.empty() ? std::string() : " (pid " + pid + ")"),
                      "secrets status");
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0) {
    util::throw_errno("failed to write " + paths.pid);
  }
  util::write_all(fd.get(), text, paths.pid);
  return fd;
}

// A daemon killed mid-write leaves util::AtomicFile temp files (FILE.tmp.XXXXXXXX);
// an old copy of the store must not outlive the secrets it held. We hold the
// pid lock, so no other writer is running.
void remove_stale_temp_files(const util::Paths& paths)
{
  for (const auto* file : {&paths.secrets, &paths.leases, &paths.state}) {
    const std::string dir = util::dirname_of(*file);
    const std::string prefix = file->substr(dir.size() + 1) + ".tmp.";
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    for (const dirent* e = d ? ::readdir(d.get()) : nullptr; e; e = ::readdir(d.get())) {
      const std::string name = e->d_name;
      if (name.starts_with(prefix) && name.size() == prefix.size() + 8) {
        ::unlink((dir + "/" + name).c_str());
      }
    }
  }
}

// Removes the socket file at `path` only if it is one: a regular file (or
// anything else) at a configured socket_path is never deleted.
bool unlink_socket_file(const std::string& path)
{
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && ::unlink(path.c_str()) == 0;
}

// Binds the socket, replacing a stale one but never stealing a live one.
asio::local::stream_protocol::acceptor bind_socket(asio::io_context& io, const std::string& path)
{
  using asio::local::stream_protocol;
  if (struct stat st{}; ::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw util::Error(util::Errc::io, "refusing to start: " + path + " exists and is not a socket",
                        "move it away, or set another socket_path in config.json");
    }
    stream_protocol::socket probe(io);
    boost::system::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) {
      throw util::Error(util::Errc::already_exists, "another daemon is listening on " + path, "secrets status");
    }
    unlink_socket_file(path); // stale: its daemon is gone
  }
  stream_protocol::acceptor acceptor(io);
  acceptor.open(stream_protocol());
  boost::system::error_code ec;
  acceptor.bind(stream_protocol::endpoint(path), ec);
  if (ec) {
    throw util::Error(util::Errc::io, "failed to bind " + path + ": " + ec.message());
  }
  ::chmod(path.c_str(), 0600);
  acceptor.listen(asio::socket_base::max_listen_connections);
  return acceptor;
}

// systemd socket activation, parsed by hand as ssh-agent does: when
// LISTEN_PID is ours and LISTEN_FDS is 1, fd 3 is our listening socket.
// Returns -1 otherwise, or when fd 3 is not a listening Unix stream socket
// (logged): then we bind our own as before. Clears the variables, so that
// rotation hooks and other children never see them.
int activated_socket_fd(const std::string& expected_path)
{
  auto take = [](const char* name) {
    const char* v = std::getenv(name);
    std::string s = v ? v : "";
    ::unsetenv(name);
    return s;
  };
  const std::string pid = take("LISTEN_PID");
  const std::string fds = take("LISTEN_FDS");
  take("LISTEN_FDNAMES");
  if (pid.empty() || fds.empty() || pid != std::to_string(::getpid())) {
    return -1;
  }
  constexpr int fd = 3; // SD_LISTEN_FDS_START
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(int);
  socklen_t len2 = sizeof(int);
  sockaddr_un addr{};
  socklen_t addr_len = sizeof(addr);
  if (fds != "1" || ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM
      || ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len2) != 0 || listening == 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0 || addr.sun_family != AF_UNIX) {
    spdlog::warn("LISTEN_FDS={}: socket activation wants one listening Unix stream socket on fd 3; "
                 "binding {} instead",
                 fds, expected_path);
    return -1;
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  const std::string path(addr.sun_path, ::strnlen(addr.sun_path, sizeof(addr.sun_path)));
  if (path != expected_path) {
    spdlog::warn("the activated socket is {}, but clients look for {} (socket_path in config.json)", path,
                 expected_path);
  }
  spdlog::info("listening on the socket passed by systemd (fd 3, {})", path);
  return fd;
}

// The top fds stay free for the store, the snapshot, rotation pipes and the
// heartbeat: a connection landing on one of them is closed at once.
constexpr size_t k_reserved_fds = 64;

void accept_loop(asio::local::stream_protocol::acceptor& acceptor, State& state, const MethodTable& methods)
{
  acceptor.async_accept([&](const boost::system::error_code& ec, asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec && util::near_fd_limit(socket.native_handle(), k_reserved_fds)) {
      // Refused: the socket's destructor closes it; the reserve stays free.
      static uint64_t refused = 0;
      if (refused++ % 1000 == 0) {
        spdlog::warn("too many connections (fd {} is near RLIMIT_NOFILE): refusing new ones; {} refused so far",
                     socket.native_handle(), refused);
      }
    } else if (!ec) {
      std::make_shared<Session>(std::move(socket), state, methods)->start();
    } else {
      // Out of fds (EMFILE) or another error: retrying at once would spin and flood the log.
      spdlog::warn("accept failed: {}; retrying in 100 ms", ec.message());
      auto timer = std::make_shared<asio::steady_timer>(acceptor.get_executor(), std::chrono::milliseconds{100});
      timer->async_wait([&acceptor, &state, &methods, timer](const boost::system::error_code& wait_ec) {
        if (!wait_ec) {
          accept_loop(acceptor, state, methods);
        }
      });
      return;
    }
    accept_loop(acceptor, state, methods);
  });
}

void snapshot_loop(asio::steady_timer& timer, State& state)
{
  timer.expires_after(std::chrono::milliseconds{500});
  timer.async_wait([&](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    if (state.snapshot_due()) {
      state.write_snapshot_async();
    }
    snapshot_loop(timer, state);
  });
}

// The store, with identity.age read in the clear or, when it is
// passphrase-protected, unwrapped with the passphrase the CLI asked for (the
// passphrase and the identity text are wiped as they go out of scope).
std::unique_ptr<store::Store> open_store(const util::Paths& paths, const util::Clock& clock,
                                         const ServeOptions& options, bool& is_protected)
{
  is_protected = ::access(paths.identity.c_str(), F_OK) == 0 && store::identity_is_protected(paths);
  if (!is_protected) {
    return store::Store::open(paths, clock); // a missing identity gets the store's own error
  }
  if (!options.passphrase) {
    throw util::Error(store::errc::locked, paths.identity + " is passphrase-protected",
                      "start the daemon in a terminal (secrets serve), or give it the passphrase on a file "
                      "descriptor: secrets serve --passphrase-fd 3 3<FILE");
  }
  const store::age::SecretBuffer passphrase = options.passphrase();
  const store::age::SecretBuffer text = store::read_identity_text(paths, passphrase.view());
  return store::Store::open(paths, clock, store::parse_identities(text, paths.identity));
}

} // namespace

void serve(const util::Paths& home_paths, const ServeOptions& options)
{
  harden_process();
  if (::access(home_paths.home.c_str(), F_OK) != 0) {
    throw util::Error(util::Errc::io, "no store at " + home_paths.home, "secrets init");
  }
  // Ownership, modes and symlinks first: nothing in the home is read, opened
  // or created before (config.json, daemon.pid and daemon.log included).
  util::check_home(home_paths);
  // A bad config.json stops us here, naming the key (the Go daemon ignored it).
  const config::Config cfg = config::load(home_paths);
  util::Paths paths = home_paths;
  paths.socket = cfg.socket_path;
  util::SystemClock clock;
  // A running daemon is reported as such, whatever state the store is in.
  auto pid_lock = lock_pid_file(paths);
  remove_stale_temp_files(paths);
  // Then the store: permission and decryption problems stop us before the
  // socket, the log or the audit log are touched.
  bool is_protected = false;
  auto store = open_store(paths, clock, options, is_protected);
  setup_logging(paths);

  asio::io_context io;
  const int activated_fd = activated_socket_fd(paths.socket); // systemd owns that socket file
  auto acceptor = activated_fd >= 0
                    ? asio::local::stream_protocol::acceptor(io, asio::local::stream_protocol(), activated_fd)
                    : bind_socket(io, paths.socket);

  // Keyed with the store's audit key (made on the first start), anchor checked.
  audit::Log log(paths.audit, clock, start_audit_chain(*store, paths, clock));
  if (log.torn_tail_repaired()) {
    spdlog::warn("audit.log ended in a torn line (a crash mid-write); it was truncated away");
  }
  State state(paths, clock, io, std::move(store), log,
              Settings{cfg.default_lease_ttl, cfg.max_lease_ttl, cfg.rotation_timeout});
  log.set_on_durable([&io, &state](uint64_t seq) { asio::post(io, [&state, seq] { state.on_durable(seq); }); });
  log.set_on_error([](const std::string& message) { spdlog::error("audit log write failed: {}", message); });

  // Restore: snapshot, then the audit lines after it (the write-ahead log).
  auto snapshot = read_lease_snapshot(paths); // leases.json (Go's array) + state.json (ours)
  for (const auto& l : snapshot.leases) {
    state.leases().restore(l);
  }
  const size_t replayed =
    replay_audit(paths.audit, snapshot.audit_seq, state.leases(), snapshot.last_leased, snapshot.files);
  state.restore_indexes(std::move(snapshot.last_leased), std::move(snapshot.files));
  if (log.torn_tail_repaired()) {
    state.audit({{"action", "daemon_start"}, {"details", "repaired a torn last line in audit.log"}, {"success", false}});
  }
  state.audit({{"action", "daemon_start"},
               {"details", "pid " + std::to_string(::getpid()) + ", restored " + std::to_string(state.leases().size())
                             + " leases (" + std::to_string(replayed) + " replayed from audit.log)"}});
  if (is_protected) {
    // Unwrapped at start: it locks itself like any unlock (idle, max).
    state.start_unlock_timers(LockState::k_default_idle, LockState::k_default_max);
  }
  state.reindex_placeholders();
  state.leases_ended(state.leases().expire_due(clock.now()), nullptr);
  state.rewatch_holders();
  state.remove_done_env_files(); // their leases ended while we were down
  state.write_snapshot();
  state.rearm_prune_timer();

  const MethodTable methods = all_methods();

  std::unique_ptr<killswitch::Heartbeat> heartbeat;
  if (cfg.heartbeat.enabled) {
    const auto action = cfg.heartbeat.fail_action;
    heartbeat = std::make_unique<killswitch::Heartbeat>(
      cfg.heartbeat.url, cfg.heartbeat.interval, cfg.heartbeat.timeout, [&io, &state, action](const std::string& why) {
        asio::post(io, [&state, action, why] {
          spdlog::error("heartbeat failed: {}; running fail_action", why);
          state.audit({{"action", "heartbeat_fail"}, {"details", why}, {"success", false}});
          state.killswitch().trip("heartbeat: " + why);
          if (action.revoke_all || action.rotate_all || action.wipe_store) {
            run_killswitch(state, nullptr, action.rotate_all, action.wipe_store, "heartbeat failed: ",
                           [](json, uint64_t) {});
          }
        });
      });
    auto status = [hb = heartbeat.get()] {
      const auto st = hb->status();
      json j = {{"enabled", true},
                {"url", st.url},
                {"consecutive_failures", st.consecutive_failures},
                {"tripped", st.tripped}};
      j["last_success"] = st.last_success ? json(util::format_rfc3339_ms(*st.last_success)) : json(nullptr);
      if (st.last_failure) {
        j["last_failure"] = util::format_rfc3339_ms(*st.last_failure);
        j["last_error"] = st.last_error;
      }
      return j;
    };
    state.killswitch().set_heartbeat(std::move(status), [hb = heartbeat.get()] { hb->reset(); });
  }

  state.start_proxy(cfg.proxy);
  if (options.require_proxy && !state.proxy_server()) {
    // No daemon at all rather than one without its proxy.
    const std::string why = state.proxy_error().empty() ? "proxy.listen is \"off\"" : state.proxy_error();
    state.audit({{"action", "daemon_stop"}, {"details", "--require-proxy: " + why}, {"success", false}});
    log.wait_durable(log.last_seq());
    if (activated_fd < 0) {
      ::unlink(paths.socket.c_str());
    }
    ::unlink(paths.pid.c_str());
    throw util::Error(util::Errc::io, "secrets serve --require-proxy: " + why,
                      state.proxy_error_fix().empty() ? "set proxy.listen in config.json" : state.proxy_error_fix());
  }

  accept_loop(acceptor, state, methods);
  asio::steady_timer snapshot_timer(io);
  snapshot_loop(snapshot_timer, state);

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) {
      return;
    }
    spdlog::info("received signal {}, stopping", signo);
    // The proxy's last requests' audit lines are now queued on this thread:
    // the rest of the shutdown is queued behind them, so they land before daemon_stop.
    state.stop_proxy();
    asio::post(io, [&, signo] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
      if (activated_fd < 0) {
        unlink_socket_file(paths.socket);
      }
      try {
        state.write_snapshot();
      } catch (const std::exception& e) {
        spdlog::error("failed to write the lease snapshot: {}", e.what());
      }
      state.audit({{"action", "daemon_stop"}, {"details", "signal " + std::to_string(signo)}});
      log.wait_durable(log.last_seq());
      io.stop();
    });
  });
  ::signal(SIGPIPE, SIG_IGN);

  spdlog::info("agent-secrets {} serving on {} ({} secrets, {} live leases)", AGENT_SECRETS_VERSION, paths.socket,
               state.store().size(), state.leases().size());
  io.run();
  heartbeat.reset();
  state.join_workers();
  ::unlink(paths.pid.c_str());
}

} // namespace server
