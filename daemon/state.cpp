#include "daemon/state.hpp"

#include "daemon/session.hpp"
#include "daemon/snapshot.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace server {

namespace {

// A random UUIDv4, as the Go version makes lease ids.
std::string make_uuid()
{
  unsigned char b[16];
  randombytes_buf(b, sizeof(b));
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

uint64_t State::audit(json fields, const Peer* peer)
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
  const uint64_t seq = log.append(std::move(line));
  request_seq = std::max(request_seq, seq);
  return seq;
}

void State::leases_ended(const std::vector<lease::Ended>& ended, const Peer* peer, bool audit_each)
{
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
    const json note = {{"jsonrpc", "2.0"},
                       {"method", "lease.ended"},
                       {"params", {{"lease_id", e.lease.id}, {"reason", lease::to_string(e.reason)}}}};
    auto [first, last] = m_watchers.equal_range(e.lease.id);
    for (auto it = first; it != last; ++it) {
      if (auto session = it->second.lock()) {
        session->notify(note);
      }
    }
    m_watchers.erase(first, last);
  }
  if (!ended.empty()) {
    mark_dirty();
    rearm_prune_timer();
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
  write_leases_snapshot(paths.leases, seq, leases.snapshot());
  m_snapshot_dirty = false;
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
