#include "daemon/state.hpp"

#include "config/hooks.hpp"
#include "daemon/session.hpp"
#include "daemon/snapshot.hpp"
#include "rotation/runner.hpp"
#include "rpc/env_file.hpp"
#include "store/identity.hpp"
#include "store/age/primitives.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <malloc.h>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h> // explicit_bzero

namespace server {

namespace {

// A random UUIDv4, as the Go version makes lease ids.
std::string make_uuid()
{
  unsigned char b[16];
  store::age::primitives::random_bytes(b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof(out), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

} // namespace

State::State(util::Paths paths_, const util::Clock& clock_, asio::io_context& io_,
             std::unique_ptr<store::Store> store_, audit::Log& log_, Settings settings_)
  : paths(std::move(paths_)), clock(clock_), io(io_), log(log_), settings(settings_), started_at(clock_.now()),
    m_store(std::move(store_)), m_leases(clock_, make_uuid), m_prune_timer(io_), m_lock_timer(io_)
{
}

nlohmann::ordered_json audit_line(json fields, const Peer* peer)
{
  nlohmann::ordered_json line;
  for (const char* key : {"action", "secret_name", "client_id", "lease_id", "details", "success"}) {
    if (auto it = fields.find(key); it != fields.end()) {
      line[key] = std::move(*it);
      fields.erase(it);
    }
  }
  if (!line.contains("success")) {
    line["success"] = true;
  }
  for (auto& [key, value] : fields.items()) {
    line[key] = value;
  }
  if (peer) {
    line["peer"] = {{"pid", peer->pid}, {"uid", peer->uid}};
  }
  return line;
}

uint64_t State::audit(json fields, const Peer* peer)
{
  const uint64_t seq = log.append(audit_line(std::move(fields), peer));
  if (m_request_seq) {
    *m_request_seq = std::max(*m_request_seq, seq);
  }
  return seq;
}

void State::leases_ended(const std::vector<lease::Ended>& ended, const Peer* peer, bool audit_each)
{
  placeholders_ended(ended);
  for (const auto& e : ended) {
    if (audit_each) {
      const bool expired = e.reason == lease::EndReason::expired;
      const bool revoked = e.reason == lease::EndReason::revoked;
      json line = {{"action", expired ? "lease_expire" : revoked ? "lease_revoke" : "lease_end"},
                   {"secret_name", e.lease.secret_name},
                   {"client_id", e.lease.client_id},
                   {"lease_id", e.lease.id},
                   {"reason", lease::to_string(e.reason)}};
      audit(std::move(line), peer);
    }
    if (e.lease.bind_pid != 0) {
      unwatch_holder(e.lease);
    }
    auto [first, last] = m_watchers.equal_range(e.lease.id);
    if (first == last) {
      continue;
    }
    const json note = {{"jsonrpc", "2.0"},
                       {"method", "lease.ended"},
                       {"params", {{"lease_id", e.lease.id}, {"reason", lease::to_string(e.reason)}}}};
    for (auto it = first; it != last; ++it) {
      if (auto session = it->second.lock()) {
        session->notify(note);
      }
    }
    m_watchers.erase(first, last);
  }
  if (!m_files.empty()) {
    std::vector<std::string> done;
    for (const auto& [path, ids] : m_files) {
      for (const auto& e : ended) {
        if (ids.count(e.lease.id) != 0) {
          done.push_back(path);
          break;
        }
      }
    }
    for (const auto& path : done) {
      remove_file_if_done(path, peer);
    }
  }
  if (!ended.empty()) {
    mark_dirty();
    rearm_prune_timer();
  }
}

void State::leases_revoked_all(lease::Revoked revoked, const Peer* peer)
{
  const auto ended = [&revoked](const std::string& id) { return revoked.find(id) != nullptr; };
  placeholders_all_ended(revoked.reason());
  for (auto it = m_holders.begin(); it != m_holders.end();) {
    auto& ids = it->second->leases;
    if (std::erase_if(ids, ended) != 0 && ids.empty()) {
      it = m_holders.erase(it); // closing the descriptor cancels its wait
    } else {
      ++it;
    }
  }
  for (auto it = m_watchers.begin(); it != m_watchers.end();) {
    if (!ended(it->first)) {
      ++it;
      continue;
    }
    const json note = {{"jsonrpc", "2.0"},
                       {"method", "lease.ended"},
                       {"params", {{"lease_id", it->first}, {"reason", lease::to_string(revoked.reason())}}}};
    if (auto session = it->second.lock()) {
      session->notify(note);
    }
    it = m_watchers.erase(it);
  }
  std::vector<std::string> done;
  for (const auto& [path, ids] : m_files) {
    if (std::any_of(ids.begin(), ids.end(), ended)) {
      done.push_back(path);
    }
  }
  for (const auto& path : done) {
    remove_file_if_done(path, peer);
  }
  if (revoked.size() != 0) {
    mark_dirty();
    rearm_prune_timer();
    // Freed by the next snapshot's worker (due in 2 s: the table is now
    // empty), before its malloc_trim: off the io thread, and before
    // leases.json says the table is small, so RSS is back down by then.
    m_released.push_back(std::move(revoked));
  }
}

bool State::remove_file_if_done(const std::string& path, const Peer* peer)
{
  const auto it = m_files.find(path);
  if (it == m_files.end()) {
    return false;
  }
  for (const auto& id : it->second) {
    if (m_leases.find(id)) {
      return false;
    }
  }
  m_files.erase(it);
  mark_dirty();
  const std::string details = rpc::delete_env_file(path);
  audit({{"action", "env_file_removed"},
         {"details", path + ": " + details},
         {"success", details.starts_with("deleted")},
         {"path", path}},
        peer);
  return true;
}

void State::remember_leased(const std::string& name, util::TimePoint at)
{
  m_last_leased[name] = at;
  mark_dirty();
}

void State::forget_leased(const std::string& name)
{
  if (m_last_leased.erase(name) != 0) {
    mark_dirty();
  }
}

std::optional<util::TimePoint> State::last_leased(const std::string& name) const
{
  const auto it = m_last_leased.find(name);
  return it == m_last_leased.end() ? std::nullopt : std::optional(it->second);
}

void State::register_env_file(const std::string& path, std::set<std::string> lease_ids)
{
  m_files[path] = std::move(lease_ids);
  mark_dirty();
}

bool State::forget_env_file(const std::string& path)
{
  if (m_files.erase(path) == 0) {
    return false;
  }
  mark_dirty();
  return true;
}

void State::restore_indexes(LastLeased last_leased, RegisteredFiles files)
{
  m_last_leased = std::move(last_leased);
  m_files = std::move(files);
}

void State::remove_done_env_files()
{
  std::vector<std::string> registered;
  for (const auto& [path, ids] : m_files) {
    registered.push_back(path);
  }
  for (const auto& path : registered) {
    remove_file_if_done(path, nullptr);
  }
}

void State::watch(const std::string& lease_id, const std::shared_ptr<Session>& session)
{
  m_watchers.emplace(lease_id, session);
}

void State::wait_for_durable(const std::shared_ptr<Session>& session)
{
  m_waiting.push_back(session);
}

void State::on_durable(uint64_t durable_seq)
{
  auto waiting = std::move(m_waiting);
  m_waiting.clear();
  for (auto& session : waiting) {
    session->on_durable(durable_seq);
  }
}

void State::rearm_prune_timer()
{
  const auto deadline = m_leases.next_deadline();
  if (deadline == m_armed_deadline) {
    return;
  }
  m_armed_deadline = deadline;
  if (!deadline) {
    m_prune_timer.cancel();
    return;
  }
  // Lease deadlines are wall-clock times; the timer waits on the steady clock.
  const auto wait = std::max(std::chrono::nanoseconds{0}, *deadline - clock.now());
  m_prune_timer.expires_after(wait);
  m_prune_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      on_prune_timer();
    }
  });
}

void State::on_prune_timer()
{
  m_armed_deadline.reset();
  leases_ended(m_leases.expire_due(clock.now()), nullptr);
  rearm_prune_timer();
}

void State::write_snapshot()
{
  const uint64_t seq = log.last_seq();
  log.wait_durable(seq);
  write_lease_snapshot(paths, LeaseSnapshot{.audit_seq = seq,
                                      .leases = m_leases.snapshot(),
                                      .last_leased = m_last_leased,
                                      .files = m_files,
                                      .taken_at = clock.now()});
  m_snapshot_dirty = false;
  m_snapshot_at = std::chrono::steady_clock::now();
}

bool State::snapshot_due() const
{
  // Every 2 s while dirty, and less often for big tables (every 20 s at
  // 100,000 leases): the copy is made on the io thread, and the audit log
  // covers whatever the snapshot has not caught up with yet.
  const auto every = k_snapshot_interval * std::max<size_t>(1, m_leases.size() / 10'000);
  return m_snapshot_dirty && !m_snapshot_writing && std::chrono::steady_clock::now() - m_snapshot_at >= every;
}

void State::write_snapshot_async()
{
  auto copy = std::make_shared<LeaseSnapshot>(LeaseSnapshot{.audit_seq = log.last_seq(),
                                                            .leases = m_leases.snapshot(),
                                                            .last_leased = m_last_leased,
                                                            .files = m_files,
                                                            .taken_at = clock.now()});
  auto released = std::make_shared<std::vector<lease::Revoked>>(std::move(m_released));
  m_released.clear();
  m_snapshot_dirty = false;
  m_snapshot_writing = true;
  m_snapshot_at = std::chrono::steady_clock::now();
  asio::post(m_workers, [this, copy, released]() mutable {
    // Hand back the pages of what ended since the last snapshot (100,000
    // revoked leases, say) before the file says the table is small, and the
    // snapshot's own temporaries after; else RSS stays at its peak.
    released->clear();
    ::malloc_trim(0);
    bool ok = true;
    try {
      log.wait_durable(copy->audit_seq); // never ahead of the log it is replayed from
      write_lease_snapshot(paths, *copy);
    } catch (const std::exception& e) {
      spdlog::error("failed to write the lease snapshot: {}", e.what());
      ok = false;
    }
    copy.reset();
    ::malloc_trim(0);
    asio::post(io, [this, ok] {
      m_snapshot_writing = false;
      if (!ok) {
        m_snapshot_dirty = true;
      }
    });
  });
}

void State::join_workers()
{
  m_workers.join();
  readers.join();
}

void State::lock(const std::string& reason, const Peer* peer)
{
  if (!m_store) {
    return;
  }
  placeholders_cancel_grants(); // requests in flight hold a copy of a value
  m_store.reset();             // every Secret's SecretBuffer wipes itself as it goes
  m_lock.set_locked(clock.now(), reason);
  m_lock_timer.cancel();
  audit({{"action", "lock"}, {"details", "locked: " + reason}, {"reason", reason}}, peer);
  spdlog::info("store locked ({})", reason);
}

void State::open_store(std::shared_ptr<store::age::SecretBuffer> passphrase,
                       std::function<void(std::unique_ptr<store::Store>, std::optional<util::Error>)> done)
{
  asio::post(m_workers, [this, passphrase = std::move(passphrase), done = std::move(done)]() mutable {
    std::unique_ptr<store::Store> opened;
    std::optional<util::Error> error;
    try {
      const auto text = store::read_identity_text(paths, passphrase->view());
      opened = store::Store::open(paths, clock, store::parse_identities(text, paths.identity));
    } catch (const util::Error& e) {
      error = e;
    } catch (const std::exception& e) {
      error = util::Error(util::Errc::internal, std::string("unlock failed: ") + e.what());
    }
    passphrase.reset(); // wiped here, on the worker, before the answer goes back
    asio::post(io, [opened = std::move(opened), error = std::move(error), done = std::move(done)]() mutable {
      done(std::move(opened), std::move(error));
    });
  });
}

void State::unlocked(std::unique_ptr<store::Store> store, util::Duration idle, util::Duration max)
{
  m_store = std::move(store);
  start_unlock_timers(idle, max);
}

void State::start_unlock_timers(util::Duration idle, util::Duration max)
{
  m_lock.set_unlocked(clock.now(), idle, max);
  arm_lock_timer();
}

void State::arm_lock_timer()
{
  const auto next = m_lock.next_deadline();
  if (!next) {
    m_lock_timer.cancel();
    return;
  }
  const auto wait = std::max(next->first - clock.now(), util::TimePoint::duration::zero());
  m_lock_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
  m_lock_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return; // cancelled: re-armed or locked
    }
    const auto due = m_lock.next_deadline();
    if (!due) {
      return;
    }
    if (due->first <= clock.now()) {
      lock(due->second, nullptr);
    } else {
      arm_lock_timer(); // a value was handed out since: the idle deadline moved
    }
  });
}

// The dispatcher's killswitch gate (Session::dispatch asks it for every method).
std::optional<util::Error> KillswitchState::refusal(const Method& method) const
{
  if (m_wiped && (!method.allowed_while_tripped || method.reads_values || method.mutates_store)) {
    return util::Error(server::errc::killswitch_tripped,
                       "the killswitch wiped the store; nothing can be leased or changed",
                       "restore identity.age and secrets.age from a backup, then restart: secrets serve &");
  }
  if (method.starts_killswitch && m_running) {
    return util::Error(server::errc::killswitch_tripped, "a killswitch is already running", "secrets status");
  }
  if (method.allowed_while_tripped) {
    return std::nullopt;
  }
  if (m_running) {
    return util::Error(server::errc::killswitch_tripped,
                       "the killswitch is running; new leases and renewals are refused", "secrets status");
  }
  if (!m_reason.empty()) {
    return util::Error(server::errc::killswitch_tripped, "killswitch tripped: " + m_reason, "secrets status --reset");
  }
  return std::nullopt;
}

bool KillswitchState::reset()
{
  const bool was = !m_reason.empty();
  m_reason.clear();
  m_heartbeat_reset();
  return was;
}

void KillswitchState::finished(bool wiped)
{
  m_running = false;
  m_wiped = m_wiped || wiped;
}

void KillswitchState::set_heartbeat(std::function<json()> status, std::function<void()> reset)
{
  m_heartbeat_status = std::move(status);
  m_heartbeat_reset = std::move(reset);
}

} // namespace server
