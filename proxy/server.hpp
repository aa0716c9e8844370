#pragma once
// The credential-injecting proxy (DESIGN.md section 10), inside the daemon.
//
// Who may use it: only the user the daemon runs as. Every accepted
// connection's peer is looked up by its 4-tuple in the kernel's socket table
// (SockDiag); another uid gets a 403 before its request is read, and a
// placeholder is honoured only from the uid it was leased to. Refusals before
// a valid placeholder is established are counted (status()), not audited, so
// no one can fill the audit log through the proxy; the paths of audited lines
// are cut to k_max_audited_path bytes.
//
// Threads:
// - one proxy thread runs its own io_context: it accepts, reads request
//   headers with Boost.Beast (asynchronously, so idle keep-alive connections
//   and slow senders cost no worker), and writes refusals;
// - the daemon's io thread answers `resolve` (placeholder -> lease -> secret),
//   because only it may touch the store and the lease table; a keep-alive
//   connection's next request with the same placeholders skips it (below);
// - audit lines go straight to the thread-safe audit::Log;
// - a pool of `max_concurrent` workers runs the upstream transfers with
//   libcurl, streaming the request body from and the response body to the
//   agent's socket with blocking I/O in 100 ms slices. Past the bound,
//   requests queue in the pool; none is dropped. The RPC thread never waits
//   on upstream I/O.
// A Grant carries a copy of the value; the daemon sets `cancelled` when its
// lease ends, and the worker then cuts the transfer within one slice. A
// keep-alive connection keeps its last grant for the next request with the
// same route and placeholders, while the grant is not cancelled and `Fresh`
// says the lease has not expired and the store has not changed since; any
// other request goes to `resolve`.
//
// Lifetime: start() and stop() are called from the daemon's thread; stop()
// joins everything. Call stop() before the daemon's io_context stops running
// for good: callbacks already queued there hold no reference to the Server.

#include "config/config.hpp"
#include "proxy/spec.hpp"
#include "rpc/asio.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace proxy {

class Needles;
class SockDiag;

struct Grant
{
  std::string lease_id;
  std::string secret_name;
  std::string client_id;
  std::string placeholder; // what the agent holds: scrubbed responses carry it in place of the value
  store::age::SecretBuffer value;
  store::ProxySpec spec;
  // Parsed once from spec, by set_spec.
  std::string host;      // of spec.base_url
  std::string base_path; // of spec.base_url: "" or "/v1"
  Injection injection;
  util::TimePoint expires_at;
  uint64_t store_generation = 0;
  std::atomic<bool> cancelled{false};

  void set_spec(store::ProxySpec s);
  // Every encoded form of `value`, to be replaced by `placeholder` in
  // responses; built once, on first use, by whichever worker comes first.
  const std::shared_ptr<const Needles>& scrub_needles();

private:
  std::once_flag m_needles_once;
  std::shared_ptr<const Needles> m_needles;
};

// Why a request is not forwarded: a 4xx with a JSON body
// {"error":{"type":"agent_secrets_proxy","code","message","fix","reason"?}}.
struct Refusal
{
  int status = 407;
  std::string code;    // missing_placeholder, unknown_placeholder, expired, revoked, wrong_route, unknown_route, ...
  std::string message; // never a value or a placeholder
  std::string fix;
  std::string reason;  // how the lease ended, for revoked
  std::string lease_id;
  std::string secret_name;
  std::string client_id;
  // The request carried a valid placeholder of the connection's user
  // (wrong_route, out_of_scope): audited as a proxy_request. Any refusal
  // before that is only counted.
  bool authenticated = false;
};

using Resolution = std::variant<std::shared_ptr<Grant>, Refusal>;

class Connection;

class Server
{
public:
  // Runs on `daemon_io`'s thread. Gets the route (the first path segment),
  // every placeholder-shaped token of the request, and the uid owning the
  // agent's end of the connection.
  using Resolve =
    std::function<Resolution(const std::string& route, const std::vector<std::string>& placeholders, uid_t uid)>;
  // Runs on the proxy's threads (the proxy thread and the workers), at once.
  using Audit = std::function<void(nlohmann::json line)>;
  // Runs on the proxy thread: may read only what is safe from any thread.
  using Fresh = std::function<bool(const Grant&)>;

  Server(config::Proxy cfg, asio::io_context& daemon_io, Resolve resolve, Fresh fresh, Audit audit);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds cfg.listen and starts the threads. Throws util::Error(io) naming
  // the address when it cannot listen, or when the kernel cannot say who
  // owns a connection (then every agent would be refused).
  void start();
  void stop();

  // "127.0.0.1:7700": the bound address (the real port when cfg asked for 0).
  const std::string& address() const { return m_address; }
  // {enabled, listen, requests, errors, active, refused, refused_by_code}:
  // `refused` counts the refusals that were not audited (another user's
  // connections, requests without a valid placeholder), by code.
  nlohmann::json status() const;
  // Idle connections let go of cached grants whose lease has ended, so that
  // no copy of a value outlives its leases. Any thread.
  void release_cancelled();

private:
  friend class Connection;
  friend class Transfer;
  void accept();
  void audit(nlohmann::json line);
  void finished(bool ok);
  void count_refusal(const std::string& code);
  // A 403 to a connection whose peer is not our user, without reading its request.
  void refuse_connection(asio::ip::tcp::socket socket, const Refusal& r);

  config::Proxy m_cfg;
  asio::io_context& m_daemon_io;
  Resolve m_resolve;
  Fresh m_fresh;
  Audit m_audit;
  asio::io_context m_io;
  asio::ip::tcp::acceptor m_acceptor;
  std::unique_ptr<asio::thread_pool> m_workers;
  std::thread m_thread;
  std::string m_address;
  const uid_t m_uid;                                   // the daemon's: the only user served
  std::unique_ptr<SockDiag> m_diag;                    // proxy thread only
  std::set<std::shared_ptr<Connection>> m_connections; // proxy thread only
  std::atomic<bool> m_stopping{false};
  std::atomic<uint64_t> m_requests{0};
  std::atomic<uint64_t> m_errors{0};
  std::atomic<int64_t> m_active{0};
  mutable std::mutex m_refused_mutex;
  std::map<std::string, uint64_t> m_refused; // code -> count; the codes are a fixed few
};

} // namespace proxy
