#pragma once
// The daemon's state and the method table types. Everything here is touched
// only from the daemon's single io thread, except audit::Log, which is
// thread-safe and fsyncs on its own writer thread.

#include "audit/log.hpp"
#include "config/hooks.hpp"
#include "daemon/peer.hpp"
#include "util/error.hpp"
#include "lease/table.hpp"
#include "proxy/server.hpp"
#include "rpc/asio.hpp"
#include "rpc/protocol.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/file.hpp"
#include "util/paths.hpp"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <sys/types.h>
#include <unordered_map>
#include <vector>

namespace server {

using nlohmann::json;

class Session;

// An audit line's members in the log's order (audit/log.hpp): action,
// secret_name, client_id, lease_id, details, success (default true), the
// rest, peer. Pure: any thread.
nlohmann::ordered_json audit_line(json fields, const Peer* peer = nullptr);

struct Settings
{
  util::Duration default_lease_ttl = std::chrono::hours{1};
  util::Duration max_lease_ttl = std::chrono::hours{24};
  util::Duration rotation_timeout = std::chrono::seconds{30};
};

struct RotationOutcome
{
  std::string name;
  bool success = false;
  bool changed = false;
  std::string output; // the hook's stderr, redacted and truncated; never its stdout
  std::string command; // the rotate_via that ran or was refused
  std::string error;
  std::string fix; // set when the refusal has a better fix than adding a hook
  util::Errc code = util::Errc::rotation_failed; // secret_not_found for a missing secret
  util::TimePoint executed_at;
  uint64_t audit_seq = 0;
};

class State
{
public:
  State(util::Paths paths, const util::Clock& clock, asio::io_context& io, std::unique_ptr<store::Store> store,
        audit::Log& log, Settings settings);

  util::Paths paths;
  const util::Clock& clock;
  asio::io_context& io;
  std::unique_ptr<store::Store> store;
  audit::Log& log;
  lease::Table leases;
  Settings settings;
  util::TimePoint started_at;
  std::map<std::string, util::TimePoint> last_leased; // health's index, kept in state.json
  std::map<std::string, std::set<std::string>> files;  // secrets env: path -> live leases, kept in state.json

  // Appends an audit line with the peer; the reply of the request being
  // handled waits until it is durable.
  uint64_t audit(json fields, const Peer* peer = nullptr);
  // Audits and applies the effects of ended leases: one line each (or none
  // when `audit_each` is false, for the killswitch's single line), watch
  // notifications, and a dirty snapshot.
  void leases_ended(const std::vector<lease::Ended>& ended, const Peer* peer, bool audit_each = true);
  // The same for everything lease::Table::take_all ended, without an audit
  // line each (the killswitch writes one), found from the holders, watchers
  // and env files rather than lease by lease. The leases are freed later by
  // the snapshot worker, so the reply does not wait for 100,000 frees.
  void leases_revoked_all(lease::Revoked revoked, const Peer* peer);
  // Re-arms the pruning timer at the earliest lease deadline.
  void rearm_prune_timer();
  void watch(const std::string& lease_id, const std::shared_ptr<Session>& session);
  // Deletes a registered env file once none of its leases is live; returns whether it did.
  bool remove_file_if_done(const std::string& path, const Peer* peer);
  // A session with replies waiting for their audit lines; on_durable (io
  // thread) releases them.
  void wait_for_durable(const std::shared_ptr<Session>& session);
  void on_durable(uint64_t durable_seq);

  // Runs the secret's rotation hook on a worker thread; on the io thread,
  // stores the new value, audits secret_rotate, then calls `done`. Two
  // rotations of one secret never overlap: the second fails at once. The
  // hook runs only if hooks.json (read now) allows exactly its command.
  void rotate(const std::string& name, const Peer* peer, std::function<void(RotationOutcome)> done);
  // Process-bound leases (holders.cpp): the lease ends when its holder exits.
  // Watches a bound lease's holder through `pidfd` (util::open_process), or
  // opens one when none is given; false when the holder is gone.
  bool watch_holder(const lease::Lease& l, util::UniqueFd pidfd = {});
  // After a restart: re-watches every bound lease and ends those whose holder is gone.
  void rewatch_holders();
  // Throws killswitch_tripped when new leases (or store changes) are refused.
  void check_not_tripped() const;
  // Waits for running hooks and reads (shutdown).
  void join_workers();
  // Long reads of the audit log (verify, tail), apart from the hooks' pool so
  // that neither waits for the other, and never on the io thread.
  asio::thread_pool readers{2};

  bool wiped = false;                 // the killswitch destroyed the store
  bool killswitch_running = false;    // revoke --all is rotating or wiping
  std::string tripped_reason;         // non-empty: the heartbeat tripped
  std::function<json()> heartbeat_status = [] { return json{{"enabled", false}}; };
  std::function<void()> heartbeat_reset = [] {};

  void mark_dirty() { m_snapshot_dirty = true; }
  bool snapshot_dirty() const { return m_snapshot_dirty; }
  // Writes leases.json and state.json covering every line appended so far (waits until they are durable first).
  void write_snapshot();
  // The periodic snapshot: due when dirty, not sooner than k_snapshot_interval
  // (longer for big tables); copies the table here and writes it on a worker.
  static constexpr auto k_snapshot_interval = std::chrono::seconds{2};
  bool snapshot_due() const;
  void write_snapshot_async();

  // Set around each dispatch: the last audit seq the reply must wait for.
  uint64_t request_seq = 0;

  // Never-see mode (proxy.cpp). The placeholder handed out for a proxy-only
  // lease is kept only as its SHA-256, here and in the lease record.
  std::unique_ptr<proxy::Server> proxy_server; // null: off, or could not start (proxy_error)
  std::string proxy_error;
  std::string proxy_error_fix;
  // Starts the proxy unless cfg.listen is "off". When it cannot start (the
  // port is taken), the daemon serves without it: proxy_error says why, and
  // status and lease results carry it in `warnings` (proxy_warnings).
  void start_proxy(const config::Proxy& cfg);
  json proxy_warnings() const; // [] when the proxy runs or is off
  static std::string new_placeholder();
  // `uid`: the leasing peer's. The proxy honours the placeholder only on
  // connections owned by that uid.
  void index_placeholder(const lease::Lease& l, uid_t uid);
  // After the table was restored. The uid is not in the lease record: it is
  // the daemon's, as the session serves no other uid (session.cpp).
  void reindex_placeholders();
  // The proxy's question, on this thread: which lease does a request to
  // `route` carrying `placeholders`, on a connection owned by `uid`, use?
  proxy::Resolution resolve_proxy(const std::string& route, const std::vector<std::string>& placeholders, uid_t uid);
  json proxy_status() const;

private:
  void placeholders_ended(const std::vector<lease::Ended>& ended);
  void placeholders_all_ended(lease::EndReason reason); // every live lease ended (revoke --all)
  void remember_ended_placeholder(const std::string& sha256, lease::EndReason reason);
  struct PlaceholderOwner
  {
    std::string lease_id;
    uid_t uid = 0; // who leased it
  };
  std::unordered_map<std::string, PlaceholderOwner> m_placeholders;    // sha256 -> live lease
  std::unordered_map<std::string, lease::EndReason> m_ended_placeholders; // sha256 -> how it ended, bounded
  std::deque<std::string> m_ended_placeholder_order;
  std::unordered_multimap<std::string, std::weak_ptr<proxy::Grant>> m_grants; // lease id -> requests in flight

  void on_prune_timer();
  struct Holder
  {
    explicit Holder(asio::io_context& io, int fd) : pidfd(io, fd) {}
    asio::posix::stream_descriptor pidfd;
    std::set<std::string> leases;
  };
  using HolderKey = std::pair<int, uint64_t>; // pid, start time
  void on_holder_exit(const HolderKey& key);
  void unwatch_holder(const lease::Lease& l);

  std::map<HolderKey, std::unique_ptr<Holder>> m_holders;

  asio::steady_timer m_prune_timer;
  std::optional<util::TimePoint> m_armed_deadline;
  std::multimap<std::string, std::weak_ptr<Session>> m_watchers;
  std::vector<lease::Revoked> m_released; // freed by the next write_snapshot_async, on its worker
  std::vector<std::shared_ptr<Session>> m_waiting; // strong: a paused session has no other owner
  std::set<std::string> m_rotating;
  // Audits hooks.json when it differs from what the last rotation read.
  void audit_hooks_change(const config::Hooks& hooks, const Peer* peer);
  std::optional<config::Hooks> m_hooks_seen;
  asio::thread_pool m_workers{4}; // hooks run here, never on the io thread
  bool m_snapshot_dirty = false;
  bool m_snapshot_writing = false;
  std::chrono::steady_clock::time_point m_snapshot_at{};
};

struct Request
{
  const json& params;
  const Peer& peer;
  std::shared_ptr<Session> session;
};

using Handler = std::function<json(State&, const Request&)>;

// An async method's handler copies what it needs from the request, starts its
// work, and later calls `respond` on the io thread with a function that
// produces the result (or throws util::Error); the reply keeps its place in
// the connection's order. `respond` must be called exactly once.
using Responder = std::function<void(std::function<json()>)>;
using AsyncHandler = std::function<void(State&, const Request&, Responder)>;

// A result produced in pieces on a worker (State::readers): the session asks
// for the next piece only once the previous one is on the socket, so neither
// a 300 MB reply nor a slow client holds memory or a thread. Concatenated,
// the pieces are the result's JSON text (secrets.audit streams a whole log).
class ResultStream
{
public:
  virtual ~ResultStream() = default;
  // On a worker: the next piece; an empty string at the end. A throw after
  // the first piece closes the connection: the reply cannot be completed.
  virtual std::string next() = 0;
};
// On the io thread: checks the params (a throw is an ordinary error reply)
// and opens what the stream will read.
using StreamHandler = std::function<std::unique_ptr<ResultStream>(State&, const Request&)>;

struct Method
{
  Handler handler;
  // On failure the dispatcher audits this action with success=false.
  const char* audit_action = nullptr;
  AsyncHandler async_handler = nullptr; // set instead of handler for slow work (hooks)
  StreamHandler stream_handler = nullptr; // set instead of handler for a streamed result
};

using MethodTable = std::map<std::string, Method, std::less<>>;

// One registration function per family (methods_*.cpp).
void add_secret_methods(MethodTable& table);
void add_lease_methods(MethodTable& table);
void add_audit_methods(MethodTable& table);
void add_status_methods(MethodTable& table);
void add_killswitch_methods(MethodTable& table);

// The killswitch, for revokeAll and the heartbeat: every lease ends now, then
// hooks run (rotate_all) and the store is wiped (wipe); one killswitch line;
// then done(report, audit seq) on the io thread.
void run_killswitch(State& s, const Peer* peer, bool rotate_all, bool wipe, std::string cause,
                    std::function<void(json report, uint64_t seq)> done);

// Typed access to params; each throws invalid_params naming the field.
std::string required_string(const json& params, const char* field);
std::string optional_string(const json& params, const char* field, const std::string& fallback = {});
bool optional_bool(const json& params, const char* field, bool fallback = false);
int64_t optional_int(const json& params, const char* field, int64_t fallback = 0);
std::vector<std::string> required_string_array(const json& params, const char* field);
std::vector<std::string> optional_string_array(const json& params, const char* field);

} // namespace server
