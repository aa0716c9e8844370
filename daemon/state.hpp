#pragma once
// The daemon's state. Everything here is touched only from the daemon's
// single io thread, except audit::Log, which is thread-safe and fsyncs on its
// own writer thread. The method table is daemon/method.hpp.

#include "audit/log.hpp"
#include "config/hooks.hpp"
#include "daemon/errors.hpp"
#include "daemon/lock.hpp"
#include "daemon/method.hpp"
#include "daemon/peer.hpp"
#include "daemon/snapshot.hpp"
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
  util::Errc code = server::errc::rotation_failed; // secret_not_found for a missing secret
  util::TimePoint executed_at;
  uint64_t audit_seq = 0;
};

// The killswitch's state (DESIGN.md section 8), and the gate the dispatcher
// asks about every method. Three conditions refuse what is not allowed
// while tripped: a running killswitch (revoke --all rotating or wiping), a
// tripped heartbeat (until secrets status --reset or a restart), and a wiped
// store (for good; then reading or changing secrets is refused too: the
// identity is gone, and a write would make a new store in its place).
class KillswitchState
{
public:
  // Why `method` is refused now (server::errc::killswitch_tripped), or nothing.
  std::optional<util::Error> refusal(const Method& method) const;

  // What status reports as killswitch_tripped: the heartbeat tripped, or a wipe.
  bool tripped() const { return !m_reason.empty() || m_wiped; }
  bool wiped() const { return m_wiped; }
  bool running() const { return m_running; }

  // The heartbeat's fail_action: refuses new leases until reset().
  void trip(std::string reason) { m_reason = std::move(reason); }
  // secrets status --reset: clears a heartbeat trip (and the heartbeat's
  // count); returns whether it was tripped. A wipe stays.
  bool reset();
  // A killswitch run: `refusing` while it rotates or wipes; `wiped` once it wiped.
  void started(bool refusing) { m_running = refusing; }
  void finished(bool wiped);

  // The heartbeat, when one is configured (set once by serve).
  void set_heartbeat(std::function<json()> status, std::function<void()> reset);
  json heartbeat_status() const { return m_heartbeat_status(); }

private:
  bool m_wiped = false;
  bool m_running = false;
  std::string m_reason; // non-empty: the heartbeat tripped
  std::function<json()> m_heartbeat_status = [] { return json{{"enabled", false}}; };
  std::function<void()> m_heartbeat_reset = [] {};
};

class State
{
public:
  State(util::Paths paths, const util::Clock& clock, asio::io_context& io, std::unique_ptr<store::Store> store,
        audit::Log& log, Settings settings);

  const util::Paths paths;
  const util::Clock& clock;
  asio::io_context& io;
  audit::Log& log;
  const Settings settings;
  const util::TimePoint started_at;

  // The store and the lease table: handlers use them, nobody replaces them.
  store::Store& store() { return *m_store; }
  const store::Store& store() const { return *m_store; }
  lease::Table& leases() { return m_leases; }
  const lease::Table& leases() const { return m_leases; }

  // Appends an audit line with the peer; returns its seq. Inside a
  // RequestAudit (a request being handled), the request's reply waits until
  // the line is durable.
  uint64_t audit(json fields, const Peer* peer = nullptr);

  // Binds the audit lines appended while it lives to one request: each raises
  // `seq`, the last line that request's reply waits for. The dispatcher holds
  // one around each synchronous call into a method; they nest (an async reply
  // answered from inside another call gets its own), so no request's lines
  // count for another. Lines appended outside any (timers, the heartbeat)
  // hold no reply.
  class RequestAudit
  {
  public:
    RequestAudit(State& state, uint64_t& seq) : m_state(state), m_outer(state.m_request_seq)
    {
      state.m_request_seq = &seq;
    }
    ~RequestAudit() { m_state.m_request_seq = m_outer; }
    RequestAudit(const RequestAudit&) = delete;
    RequestAudit& operator=(const RequestAudit&) = delete;

  private:
    State& m_state;
    uint64_t* m_outer;
  };

  // The store's lock (DESIGN.md section 11). While locked the store is not
  // held at all: store() must not be called (the dispatcher's gate keeps
  // every method that needs it away; the few served while locked ask
  // store_open() first).
  LockState& lock_state() { return m_lock; }
  const LockState& lock_state() const { return m_lock; }
  bool store_open() const { return m_store != nullptr; }
  // Locks now: the store, every decrypted value and the identity in it are
  // freed (SecretBuffers wipe themselves), the proxy's grants are dropped,
  // and `lock` is audited with `reason` (manual, idle, max, suspend,
  // screen_lock).
  void lock(const std::string& reason, const Peer* peer);
  // Unwraps identity.age with `passphrase` and opens the store, on a worker
  // (scrypt takes about half a second and 256 MiB: other clients are not
  // stalled); then, on the io thread, done(store) or done(nullptr, error).
  void open_store(std::shared_ptr<store::age::SecretBuffer> passphrase,
                  std::function<void(std::unique_ptr<store::Store>, std::optional<util::Error>)> done);
  // Installs a store open_store opened (or serve's, unwrapped at start) and
  // starts the lock's timers: idle after the last value handed out, max
  // after now (DESIGN.md section 11).
  void unlocked(std::unique_ptr<store::Store> store, util::Duration idle, util::Duration max);
  // serve, for an identity unwrapped at start: the same timers, the store already held.
  void start_unlock_timers(util::Duration idle, util::Duration max);
  // A value was handed out: the idle timer starts again (the dispatcher).
  void note_value_handed_out() { m_lock.note_use(clock.now()); }

  KillswitchState& killswitch() { return m_killswitch; }
  const KillswitchState& killswitch() const { return m_killswitch; }

  // health's index (kept in state.json): when each secret was last leased.
  void remember_leased(const std::string& name, util::TimePoint at);
  void forget_leased(const std::string& name);
  std::optional<util::TimePoint> last_leased(const std::string& name) const;
  // The env files of `secrets env` (kept in state.json): each is deleted once
  // none of its leases is live.
  void register_env_file(const std::string& path, std::set<std::string> lease_ids);
  // Forgets a file deleted by secrets cleanup; false when it was not registered.
  bool forget_env_file(const std::string& path);
  // At start-up: both indexes from the snapshot and the audit replay, then
  // deletes the env files whose leases ended while the daemon was down.
  void restore_indexes(LastLeased last_leased, RegisteredFiles files);
  void remove_done_env_files();
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
  // Waits for running hooks and reads (shutdown).
  void join_workers();
  // Long reads of the audit log (verify, tail), apart from the hooks' pool so
  // that neither waits for the other, and never on the io thread.
  asio::thread_pool readers{2};

  void mark_dirty() { m_snapshot_dirty = true; }
  bool snapshot_dirty() const { return m_snapshot_dirty; }
  // Writes leases.json and state.json covering every line appended so far (waits until they are durable first).
  void write_snapshot();
  // The periodic snapshot: due when dirty, not sooner than k_snapshot_interval
  // (longer for big tables); copies the table here and writes it on a worker.
  static constexpr auto k_snapshot_interval = std::chrono::seconds{2};
  bool snapshot_due() const;
  void write_snapshot_async();

  // Never-see mode (proxy.cpp). The placeholder handed out for a proxy-only
  // lease is kept only as its SHA-256, here and in the lease record.
  // Null: off, or could not start (proxy_error says why).
  proxy::Server* proxy_server() const { return m_proxy_server.get(); }
  const std::string& proxy_error() const { return m_proxy_error; }
  const std::string& proxy_error_fix() const { return m_proxy_error_fix; }
  // Starts the proxy unless cfg.listen is "off". When it cannot start (the
  // port is taken), the daemon serves without it: proxy_error says why, and
  // status and lease results carry it in `warnings` (proxy_warnings).
  void start_proxy(const config::Proxy& cfg);
  // Stops taking proxy requests (shutdown); nothing when it is not running.
  void stop_proxy();
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
  std::unique_ptr<store::Store> m_store;
  lease::Table m_leases;
  KillswitchState m_killswitch;
  LockState m_lock;
  uint64_t* m_request_seq = nullptr; // the innermost RequestAudit's
  LastLeased m_last_leased;
  RegisteredFiles m_files;

  std::unique_ptr<proxy::Server> m_proxy_server;
  std::string m_proxy_error;
  std::string m_proxy_error_fix;
  void placeholders_ended(const std::vector<lease::Ended>& ended);
  void placeholders_all_ended(lease::EndReason reason); // every live lease ended (revoke --all)
  void placeholders_cancel_grants(); // requests in flight are cut, their copies of values freed
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
  asio::steady_timer m_lock_timer;
  void arm_lock_timer();
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

// The killswitch, for revokeAll and the heartbeat: every lease ends now, then
// hooks run (rotate_all) and the store is wiped (wipe); one killswitch line;
// then done(report, audit seq) on the io thread.
void run_killswitch(State& s, const Peer* peer, bool rotate_all, bool wipe, std::string cause,
                    std::function<void(json report, uint64_t seq)> done);

} // namespace server
