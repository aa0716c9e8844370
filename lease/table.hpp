#pragma once
// The lease table: a pure state machine after Vault's expiration manager
// (vault/expiration.go), with no I/O, no threads and no timers of its own.
//
// Contract
// - Single-threaded: the daemon calls every member from its one io thread.
//   Nothing here locks.
// - Time comes from the injected util::Clock (acquire, renew); expire_due takes
//   `now` explicitly so the daemon's single steady_timer decides when to prune.
//   A lease whose expires_at has passed stays in the table until expire_due
//   ends it, so every expiry is reported once and can be audited. renew treats
//   such a lease as ended; find and revoke still see it.
// - Persistence is the caller's job: the daemon writes the audit line (the
//   write-ahead log) and then applies the change here, or replays it with
//   restore / forget.
// - Errors are util::Error:
//     invalid_params   bad TTL (resolve_ttl, acquire, renew), renew past the
//                      lease's maximum lifetime, restore without an id
//     errc::not_found  an id that is neither live nor recently ended
//     errc::ended      an id among the last `ended_memory` ended ones; the
//                      message names how it ended: "lease X already ended (expired)"
//     internal         make_id returned an id that is already live
//   A throwing call leaves the table unchanged.
// - References and pointers returned by acquire, renew and find stay valid
//   until that lease ends or is forgotten or replaced; other leases coming and
//   going do not move them.
//
// Cost with n live leases: acquire, revoke, renew, restore, forget are
// O(log n); expire_due and revoke_secret are O(k log n) for k leases ended;
// take_all is O(min(n, ended_memory)) (the indexes are handed over, not
// emptied); revoke_all is one O(n) pass; count_expiring_before is
// O(log n + k) for k counted; snapshot is O(n log n). Memory for ended ids is
// bounded by `ended_memory`.

#include "util/clock.hpp"
#include "util/duration.hpp"
#include "util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace lease {

// The lease table's own failures (util/error.hpp), valued as their JSON-RPC
// codes of DESIGN.md section 4.
namespace errc {
inline constexpr util::Errc not_found = util::layer_errc(-32001); // "lease_not_found"
inline constexpr util::Errc ended = util::layer_errc(-32002);     // "lease_ended"
} // namespace errc

struct Lease
{
  std::string id;
  std::string secret_name;
  std::string client_id;
  util::TimePoint created_at;
  util::TimePoint expires_at;
  util::Duration ttl{};   // as acquired: what a renewal without a TTL extends by
  int bind_pid = 0;       // the holder process (0: not bound); the daemon ends
  uint64_t bind_start = 0; // the lease when it exits. Its start time (util/process.hpp).
  // A proxy-only secret's lease: hex SHA-256 of the placeholder the client got.
  // The placeholder itself is never stored, logged or snapshotted.
  std::string placeholder_sha256{};
};

enum class EndReason { revoked, expired, killswitch, secret_deleted, holder_exited };

// "revoked", "expired", "killswitch", "secret_deleted", "holder_exited": the
// spelling used in audit `lease_end` details and `lease.ended` notifications.
const char* to_string(EndReason reason);

struct Ended
{
  Lease lease;
  EndReason reason;
};

// Every lease that Table::take_all ended, with its indexes as they were. The
// caller walks it and then frees it where that suits it: freeing 100,000
// leases' nodes was most of a `revoke --all`, so the daemon does it on a
// worker thread. Owns its leases; independent of the table afterwards.
class Revoked
{
public:
  std::size_t size() const { return m_live.size(); }
  EndReason reason() const { return m_reason; }
  // The ended lease with this id, or nullptr.
  const Lease* find(const std::string& id) const;
  // Calls f(const Lease&) for every ended lease, in no particular order.
  template <typename F>
  void for_each(F&& f) const
  {
    for (const auto& [id, lease] : m_live) {
      f(lease);
    }
  }

private:
  friend class Table;
  std::unordered_map<std::string, Lease> m_live;
  std::set<std::pair<util::TimePoint, std::string>> m_deadlines;
  std::unordered_map<std::string, std::unordered_set<std::string>> m_by_secret;
  EndReason m_reason = EndReason::killswitch;
};

// The shortest TTL a client may ask for. "between 1s and max" is what the
// error message promises, so sub-second TTLs are rejected rather than rounded.
inline constexpr util::Duration k_min_ttl = std::chrono::seconds{1};

// Resolves a client's TTL string. Empty means `default_ttl`, returned as is
// (config validates it). Anything else must be a Go duration in
// [k_min_ttl, max_ttl]; otherwise throws util::Error(invalid_params) whose
// message states the allowed range:
//   invalid ttl "48h": must be a duration between 1s and 24h0m0s (e.g. 30m, 1h)
// Never clamps.
util::Duration resolve_ttl(std::string_view ttl, util::Duration default_ttl, util::Duration max_ttl);

class Table
{
public:
  // How many ended ids are remembered so that a late revoke gets lease_ended
  // rather than lease_not_found.
  static constexpr std::size_t k_default_ended_memory = 10'000;

  // `make_id` makes a fresh lease id: the daemon passes a UUIDv4 generator over
  // randombytes_buf, tests pass a counter. `clock` must outlive the table.
  Table(const util::Clock& clock, std::function<std::string()> make_id,
        std::size_t ended_memory = k_default_ended_memory);

  // A new lease with created_at = now and expires_at = now + ttl. Throws
  // invalid_params if ttl <= 0 or overflows the clock; internal if make_id
  // repeats a live id.
  // `bind_pid`/`bind_start` and `placeholder_sha256` are recorded as given:
  // the daemon watches the process and indexes the placeholder.
  const Lease& acquire(std::string secret_name, std::string client_id, util::Duration ttl, int bind_pid = 0,
                       uint64_t bind_start = 0, std::string placeholder_sha256 = {});

  // Ends one live lease (whether or not its deadline has passed) and returns
  // it. Throws lease_ended for a recently ended id, lease_not_found otherwise.
  Ended revoke(const std::string& id, EndReason reason = EndReason::revoked);

  // Ends every live lease at once and hands them over; the newest
  // `ended_memory` ids (by expires_at, id) are remembered as ended.
  Revoked take_all(EndReason reason = EndReason::killswitch);

  // take_all, as a list ordered by expires_at, id.
  std::vector<Ended> revoke_all(EndReason reason = EndReason::killswitch);

  // Ends the leases of one secret; the result is ordered by expires_at, id.
  std::vector<Ended> revoke_secret(const std::string& secret_name,
                                   EndReason reason = EndReason::secret_deleted);

  // Ends every lease with expires_at <= now, with reason expired, in deadline order.
  std::vector<Ended> expire_due(util::TimePoint now);

  // The earliest expires_at among live leases (possibly already past), for the
  // daemon's single steady_timer; nullopt when the table is empty.
  std::optional<util::TimePoint> next_deadline() const;

  // Renewal, as Vault: expires_at becomes now + ttl (which may shorten it), but
  // a lease never lives past created_at + max_ttl. A renewal that would is
  // rejected, not capped, like an over-long TTL on acquire: invalid_params
  // naming how much lifetime remains. Throws invalid_params for ttl <= 0,
  // lease_ended for a lease whose deadline has passed (even before expire_due
  // has reported it: renewal never revives a lease) or that recently ended,
  // lease_not_found otherwise.
  const Lease& renew(const std::string& id, util::Duration ttl, util::Duration max_ttl);

  // Snapshot load and write-ahead-log replay: inserts `lease` as given. A lease
  // already past expires_at is still inserted, so that expire_due ends and
  // reports it and the daemon audits the expiry. A live lease with the same id
  // is replaced. A zero ttl is taken as expires_at - created_at. Throws
  // invalid_params for an empty id.
  void restore(Lease lease);

  // Replay of lease_revoke / lease_expire / lease_end lines: removes the lease
  // without reporting it. With a reason, the id is remembered as ended, so a
  // later revoke gets lease_ended. Returns whether the lease was live.
  bool forget(const std::string& id, std::optional<EndReason> remember_as = std::nullopt);

  // The live lease with this id, or nullptr.
  const Lease* find(const std::string& id) const;

  // Live leases ordered by created_at, then id.
  std::vector<Lease> snapshot() const;

  std::size_t size() const;
  std::size_t count_for(const std::string& secret_name) const;

  // Live leases with expires_at < t (health's expiring_soon passes now + window).
  std::size_t count_expiring_before(util::TimePoint t) const;

private:
  using LiveMap = decltype(Revoked::m_live);
  using Deadline = decltype(Revoked::m_deadlines)::value_type;

  struct EndedRecord
  {
    EndReason reason;
    std::string secret_name;
    std::size_t generation; // matches the newest m_ended_order entry for this id
  };

  [[noreturn]] void throw_missing(const std::string& id) const;
  void insert(Lease lease);
  Lease unlink(LiveMap::iterator it);
  Ended end(LiveMap::iterator it, EndReason reason);
  void remember_ended(const std::string& id, const std::string& secret_name, EndReason reason);

  const util::Clock& m_clock;
  std::function<std::string()> m_make_id;
  std::size_t m_ended_memory;

  LiveMap m_live;
  decltype(Revoked::m_deadlines) m_deadlines;
  decltype(Revoked::m_by_secret) m_by_secret;

  // Bounded memory of ended ids, oldest first. An id can end more than once
  // (restore after end), so each entry carries a generation and only the
  // newest one evicts the record.
  std::unordered_map<std::string, EndedRecord> m_ended;
  std::deque<std::pair<std::string, std::size_t>> m_ended_order;
  std::size_t m_ended_generation = 0;
};

} // namespace lease
