#include "daemon/state.hpp"

#include "config/hooks.hpp"
#include "daemon/session.hpp"
#include "daemon/snapshot.hpp"
#include "rotation/runner.hpp"
#include "rpc/env_file.hpp"
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
  : paths(std::move(paths_)), clock(clock_), io(io_), store(std::move(store_)), log(log_),
    leases(clock_, make_uuid), settings(settings_), started_at(clock_.now()), m_prune_timer(io_)
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
  request_seq = std::max(request_seq, seq);
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
  if (!files.empty()) {
    std::vector<std::string> done;
    for (const auto& [path, ids] : files) {
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
  for (const auto& [path, ids] : files) {
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
  const auto it = files.find(path);
  if (it == files.end()) {
    return false;
  }
  for (const auto& id : it->second) {
    if (leases.find(id)) {
      return false;
    }
  }
  files.erase(it);
  mark_dirty();
  const std::string details = rpc::delete_env_file(path);
  audit({{"action", "env_file_removed"},
         {"details", path + ": " + details},
         {"success", details.starts_with("deleted")},
         {"path", path}},
        peer);
  return true;
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
  const auto deadline = leases.next_deadline();
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
  request_seq = 0;
  leases_ended(leases.expire_due(clock.now()), nullptr);
  rearm_prune_timer();
}

void State::write_snapshot()
{
  const uint64_t seq = log.last_seq();
  log.wait_durable(seq);
  write_lease_snapshot(paths, LeaseSnapshot{.audit_seq = seq,
                                      .leases = leases.snapshot(),
                                      .last_leased = last_leased,
                                      .files = files,
                                      .taken_at = clock.now()});
  m_snapshot_dirty = false;
  m_snapshot_at = std::chrono::steady_clock::now();
}

bool State::snapshot_due() const
{
  // Every 2 s while dirty, and less often for big tables (every 20 s at
  // 100,000 leases): the copy is made on the io thread, and the audit log
  // covers whatever the snapshot has not caught up with yet.
  const auto every = k_snapshot_interval * std::max<size_t>(1, leases.size() / 10'000);
  return m_snapshot_dirty && !m_snapshot_writing && std::chrono::steady_clock::now() - m_snapshot_at >= every;
}

void State::write_snapshot_async()
{
  auto copy = std::make_shared<LeaseSnapshot>(LeaseSnapshot{.audit_seq = log.last_seq(),
                                                            .leases = leases.snapshot(),
                                                            .last_leased = last_leased,
                                                            .files = files,
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

} // namespace server

namespace server {

namespace {

[[noreturn]] void bad_field(const char* field, const char* expected)
{
  throw util::Error(util::Errc::invalid_params,
                    std::string("invalid params: field ") + field + " must be " + expected);
}

} // namespace

std::string required_string(const json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    bad_field(field, "a non-empty string");
  }
  return it->get<std::string>();
}

std::string optional_string(const json& params, const char* field, const std::string& fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_string()) {
    bad_field(field, "a string");
  }
  return it->get<std::string>();
}

bool optional_bool(const json& params, const char* field, bool fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_boolean()) {
    bad_field(field, "a boolean");
  }
  return it->get<bool>();
}

std::vector<std::string> required_string_array(const json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || !it->is_array() || it->empty()) {
    bad_field(field, "a non-empty array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : *it) {
    if (!item.is_string()) {
      bad_field(field, "a non-empty array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::vector<std::string> optional_string_array(const json& params, const char* field)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return {};
  }
  if (!it->is_array()) {
    bad_field(field, "an array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : *it) {
    if (!item.is_string()) {
      bad_field(field, "an array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

int64_t optional_int(const json& params, const char* field, int64_t fallback)
{
  const auto it = params.find(field);
  if (it == params.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_number_integer()) {
    bad_field(field, "an integer");
  }
  return it->get<int64_t>();
}

} // namespace server

namespace server {

void State::check_not_tripped() const
{
  if (wiped) {
    throw util::Error(util::Errc::killswitch_tripped, "the killswitch wiped the store; nothing can be leased",
                      "restore identity.age and secrets.age from a backup, then restart: secrets serve &");
  }
  if (killswitch_running) {
    throw util::Error(util::Errc::killswitch_tripped, "the killswitch is running; new leases are refused",
                      "secrets status");
  }
  if (!tripped_reason.empty()) {
    throw util::Error(util::Errc::killswitch_tripped, "killswitch tripped: " + tripped_reason,
                      "secrets status --reset");
  }
}

void State::join_workers()
{
  m_workers.join();
  readers.join();
}

void State::audit_hooks_change(const config::Hooks& hooks, const Peer* peer)
{
  if (m_hooks_seen && *m_hooks_seen == hooks) {
    return;
  }
  // The CLI writes hooks.json itself and cannot append to our log: what it
  // changed is audited here, at the first rotation that reads the change.
  json allowed = json::object();
  json removed = json::array();
  for (const auto& [name, command] : hooks.commands) {
    const std::string* before = m_hooks_seen ? m_hooks_seen->find(name) : nullptr;
    if (!before || *before != command) {
      allowed[name] = command;
    }
  }
  if (m_hooks_seen) {
    for (const auto& [name, command] : m_hooks_seen->commands) {
      if (!hooks.find(name)) {
        removed.push_back(name);
      }
    }
  }
  const std::string details =
    m_hooks_seen ? "hooks.json changed: " + std::to_string(allowed.size()) + " allowed or changed, "
                     + std::to_string(removed.size()) + " removed"
                 : "hooks.json as first read since the daemon started: " + std::to_string(hooks.commands.size())
                     + " hooks";
  audit({{"action", "hook_allowlist"}, {"details", details}, {"allowed", allowed}, {"removed", removed}}, peer);
  m_hooks_seen = hooks;
}

void State::rotate(const std::string& name, const Peer* peer, std::function<void(RotationOutcome)> done)
{
  RotationOutcome failed;
  failed.name = name;
  failed.executed_at = clock.now();
  const auto* secret = store->find(name);
  const std::string command = secret ? secret->info.rotate_via : std::string();
  if (wiped || !secret) {
    failed.error = "secret " + name + " not found";
    failed.code = util::Errc::secret_not_found;
  } else if (command.empty()) {
    failed.error = "secret " + name + " has no rotation hook";
  } else if (m_rotating.count(name) != 0) {
    failed.error = "a rotation of " + name + " is already running";
  } else {
    // Read at every rotation: what runs is what the file says now. Anyone
    // on the socket can record a rotate_via; only the user's hooks.json
    // lets it run (DESIGN.md section 16).
    try {
      const auto hooks = config::load_hooks(paths);
      audit_hooks_change(hooks, peer);
      const std::string* allowed = hooks.find(name);
      if (!allowed || *allowed != command) {
        failed.code = util::Errc::unauthorized;
        failed.error = "the rotation hook of " + name
                       + (allowed ? " differs from its entry in " : " is not in ") + config::hooks_path(paths)
                       + "; nothing ran";
        failed.fix = "check the command, then: secrets hook allow " + name + " " + config::shell_quote(command);
      }
    } catch (const util::Error& e) {
      failed.code = e.code();
      failed.error = std::string(e.what()) + "; the rotation hook of " + name + " did not run";
      failed.fix = e.fix();
    }
  }
  failed.command = command;
  if (!failed.error.empty()) {
    json line = {{"action", "secret_rotate"}, {"secret_name", name}, {"details", failed.error}, {"success", false}};
    if (!command.empty()) {
      line["rotate_via"] = command;
      line["ran"] = false;
    }
    failed.audit_seq = audit(std::move(line), peer);
    if (failed.code == util::Errc::unauthorized) {
      spdlog::warn("rotation of {} refused: {}", name, failed.error);
    }
    asio::post(io, [done = std::move(done), failed = std::move(failed)]() mutable { done(std::move(failed)); });
    return;
  }
  m_rotating.insert(name);
  const std::optional<Peer> who = peer ? std::optional<Peer>(*peer) : std::nullopt;
  auto value = std::make_shared<store::age::SecretBuffer>(secret->value.view());
  asio::post(m_workers, [this, name, who, value, command, done = std::move(done)]() mutable {
    auto result = std::make_shared<rotation::HookResult>(
      rotation::run_hook(command, name, value->view(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(settings.rotation_timeout)));
    value.reset();
    asio::post(io, [this, name, who, result, command, done = std::move(done)] {
      m_rotating.erase(name);
      RotationOutcome out;
      out.name = name;
      out.command = command;
      out.executed_at = clock.now();
      out.output = result->stderr_tail; // redacted by the runner
      std::string fresh = rotation::trim(result->stdout_data);
      explicit_bzero(result->stdout_data.data(), result->stdout_data.size());
      const Peer* p = who ? &*who : nullptr;
      if (result->survivors != 0) {
        spdlog::warn("rotation hook of {}: {} descendants could not be killed", name, result->survivors);
      }
      try {
        if (result->status != rotation::HookResult::Status::ok) {
          out.error = "rotation hook for " + name + " " + result->error;
        } else if (wiped || !store->find(name)) {
          out.error = "secret " + name + " was removed while its hook ran";
        } else {
          out.changed = !fresh.empty();
          store->mark_rotated(name, out.changed ? std::optional(store::age::SecretBuffer(fresh)) : std::nullopt);
          out.success = true;
        }
      } catch (const std::exception& e) {
        out.error = std::string("failed to store the rotated value: ") + e.what();
      }
      explicit_bzero(fresh.data(), fresh.size());
      json line = {{"action", "secret_rotate"}, {"secret_name", name}, {"success", out.success}};
      if (out.success) {
        line["details"] = out.changed ? "value changed" : "hook printed nothing; value unchanged";
      } else {
        line["details"] = out.error + (out.output.empty() ? "" : "; stderr: " + out.output);
      }
      line["rotate_via"] = command;
      line["ran"] = true;
      line["containment"] = result->containment;
      out.audit_seq = audit(std::move(line), p);
      done(std::move(out));
    });
  });
}

} // namespace server
