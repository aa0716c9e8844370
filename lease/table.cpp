#include "lease/table.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <iterator>
#include <tuple>

namespace lease {

namespace {

using util::Errc;
using util::Error;

// Client-supplied text echoed in an error message: at most `max` bytes of
// printable ASCII, everything else as \xNN. Messages end up in JSON replies and
// the audit log, so they must stay short and valid UTF-8 whatever came in.
std::string printable(std::string_view text, std::size_t max = 64)
{
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == max) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += k_hex[c >> 4];
      out += k_hex[c & 0xf];
    }
  }
  return out;
}

// t + d, or nullopt if that is past the clock's range.
std::optional<util::TimePoint> checked_add(util::TimePoint t, util::Duration d)
{
  const auto step = std::chrono::duration_cast<util::TimePoint::duration>(d);
  if (step > util::TimePoint::max() - t) {
    return std::nullopt;
  }
  return t + step;
}

util::TimePoint saturating_add(util::TimePoint t, util::Duration d)
{
  return checked_add(t, d).value_or(util::TimePoint::max());
}

std::string fix_for(const std::string& secret_name)
{
  return "secrets lease " + (secret_name.empty() ? std::string{"NAME"} : secret_name);
}

bool deadline_order(const Ended& a, const Ended& b)
{
  return std::tie(a.lease.expires_at, a.lease.id) < std::tie(b.lease.expires_at, b.lease.id);
}

} // namespace

const char* to_string(EndReason reason)
{
  switch (reason) {
  case EndReason::revoked:
    return "revoked";
  case EndReason::expired:
    return "expired";
  case EndReason::killswitch:
    return "killswitch";
  case EndReason::secret_deleted:
    return "secret_deleted";
  case EndReason::holder_exited:
    return "holder_exited";
  }
  return "unknown";
}

util::Duration resolve_ttl(std::string_view ttl, util::Duration default_ttl, util::Duration max_ttl)
{
  if (ttl.empty()) {
    return default_ttl;
  }
  const auto parsed = util::parse_duration(ttl);
  if (!parsed || *parsed < k_min_ttl || *parsed > max_ttl) {
    throw Error(Errc::invalid_params,
                "invalid ttl \"" + printable(ttl) + "\": must be a duration between "
                  + util::format_duration(k_min_ttl) + " and " + util::format_duration(max_ttl)
                  + " (e.g. 30m, 1h)");
  }
  return *parsed;
}

Table::Table(const util::Clock& clock, std::function<std::string()> make_id, std::size_t ended_memory)
  : m_clock(clock), m_make_id(std::move(make_id)), m_ended_memory(ended_memory)
{
}

const Lease& Table::acquire(std::string secret_name, std::string client_id, util::Duration ttl, int bind_pid,
                           uint64_t bind_start, std::string placeholder_sha256)
{
  const auto now = m_clock.now();
  const auto expires_at = checked_add(now, ttl);
  if (ttl <= util::Duration::zero() || !expires_at) {
    throw Error(Errc::invalid_params, "invalid lease ttl " + util::format_duration(ttl));
  }
  std::string id = m_make_id();
  if (id.empty() || m_live.contains(id)) {
    // A UUIDv4 from randombytes_buf never repeats in practice; if one does,
    // refusing beats silently handing two holders the same lease.
    throw Error(Errc::internal, "lease id generator returned a duplicate or empty id \"" + printable(id) + "\"");
  }
  auto key = id;
  insert(Lease{std::move(id), std::move(secret_name), std::move(client_id), now, *expires_at, ttl, bind_pid, bind_start,
               std::move(placeholder_sha256)});
  return m_live.at(key);
}

Ended Table::revoke(const std::string& id, EndReason reason)
{
  const auto it = m_live.find(id);
  if (it == m_live.end()) {
    throw_missing(id);
  }
  return end(it, reason);
}

Revoked Table::take_all(EndReason reason)
{
  // Only the newest ended_memory would be remembered anyway: walk the deadline
  // index back that far, then remember them oldest first, as one by one would.
  const auto keep = static_cast<std::ptrdiff_t>(std::min(m_deadlines.size(), m_ended_memory));
  for (auto it = std::prev(m_deadlines.end(), keep); it != m_deadlines.end(); ++it) {
    remember_ended(it->second, m_live.find(it->second)->second.secret_name, reason);
  }
  // Swapped out whole: the table is empty at once, and the nodes are freed
  // with the Revoked, wherever its owner lets it go.
  Revoked out;
  out.m_reason = reason;
  out.m_live.swap(m_live);
  out.m_deadlines.swap(m_deadlines);
  out.m_by_secret.swap(m_by_secret);
  return out;
}

std::vector<Ended> Table::revoke_all(EndReason reason)
{
  Revoked revoked = take_all(reason);
  std::vector<Ended> ended;
  ended.reserve(revoked.size());
  for (const auto& [expires_at, id] : revoked.m_deadlines) {
    ended.push_back(Ended{std::move(revoked.m_live.find(id)->second), reason});
  }
  return ended;
}

std::vector<Ended> Table::revoke_secret(const std::string& secret_name, EndReason reason)
{
  std::vector<Ended> ended;
  const auto bucket = m_by_secret.find(secret_name);
  if (bucket == m_by_secret.end()) {
    return ended;
  }
  // Copy the ids: ending a lease edits (and finally erases) this bucket.
  const std::vector<std::string> ids(bucket->second.begin(), bucket->second.end());
  ended.reserve(ids.size());
  for (const auto& id : ids) {
    ended.push_back(end(m_live.find(id), reason));
  }
  std::sort(ended.begin(), ended.end(), deadline_order);
  return ended;
}

std::vector<Ended> Table::expire_due(util::TimePoint now)
{
  std::vector<Ended> ended;
  while (!m_deadlines.empty() && m_deadlines.begin()->first <= now) {
    ended.push_back(end(m_live.find(m_deadlines.begin()->second), EndReason::expired));
  }
  return ended;
}

std::optional<util::TimePoint> Table::next_deadline() const
{
  if (m_deadlines.empty()) {
    return std::nullopt;
  }
  return m_deadlines.begin()->first;
}

const Lease& Table::renew(const std::string& id, util::Duration ttl, util::Duration max_ttl)
{
  const auto it = m_live.find(id);
  if (it == m_live.end()) {
    throw_missing(id);
  }
  Lease& lease = it->second;
  const auto now = m_clock.now();
  if (lease.expires_at <= now) {
    throw Error(errc::ended, "lease " + id + " already ended (expired)", fix_for(lease.secret_name));
  }
  if (ttl <= util::Duration::zero()) {
    throw Error(Errc::invalid_params, "invalid ttl " + util::format_duration(ttl) + " to renew lease " + id);
  }
  const auto limit = saturating_add(lease.created_at, max_ttl);
  const auto expires_at = checked_add(now, ttl);
  if (!expires_at || *expires_at > limit) {
    const auto remaining = std::max(std::chrono::duration_cast<std::chrono::seconds>(limit - now),
                                    std::chrono::seconds::zero());
    throw Error(Errc::invalid_params,
                "cannot renew lease " + id + " for " + util::format_duration(ttl) + ": a lease lives at most "
                  + util::format_duration(max_ttl) + " from creation, " + util::format_duration(remaining)
                  + " remains",
                // The largest renewal allowed, while there is one; then a new lease.
                remaining >= std::chrono::seconds{1}
                  ? "secrets renew " + id + " --ttl " + util::format_duration(remaining)
                  : fix_for(lease.secret_name));
  }
  m_deadlines.erase(Deadline{lease.expires_at, id});
  lease.expires_at = *expires_at;
  m_deadlines.emplace(lease.expires_at, id);
  return lease;
}

void Table::restore(Lease lease)
{
  if (lease.id.empty()) {
    throw Error(Errc::invalid_params, "cannot restore a lease without an id");
  }
  if (const auto it = m_live.find(lease.id); it != m_live.end()) {
    unlink(it);
  }
  if (lease.ttl == util::Duration::zero()) {
    lease.ttl = std::chrono::duration_cast<util::Duration>(lease.expires_at - lease.created_at);
  }
  insert(std::move(lease));
}

bool Table::forget(const std::string& id, std::optional<EndReason> remember_as)
{
  std::string secret_name;
  const auto it = m_live.find(id);
  const bool was_live = it != m_live.end();
  if (was_live) {
    secret_name = unlink(it).secret_name;
  }
  if (remember_as) {
    remember_ended(id, secret_name, *remember_as);
  }
  return was_live;
}

const Lease* Revoked::find(const std::string& id) const
{
  const auto it = m_live.find(id);
  return it == m_live.end() ? nullptr : &it->second;
}

const Lease* Table::find(const std::string& id) const
{
  const auto it = m_live.find(id);
  return it == m_live.end() ? nullptr : &it->second;
}

std::vector<Lease> Table::snapshot() const
{
  std::vector<Lease> leases;
  leases.reserve(m_live.size());
  for (const auto& [id, lease] : m_live) {
    leases.push_back(lease);
  }
  std::sort(leases.begin(), leases.end(), [](const Lease& a, const Lease& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  return leases;
}

std::size_t Table::size() const
{
  return m_live.size();
}

std::size_t Table::count_for(const std::string& secret_name) const
{
  const auto it = m_by_secret.find(secret_name);
  return it == m_by_secret.end() ? 0 : it->second.size();
}

std::size_t Table::count_expiring_before(util::TimePoint t) const
{
  // "" sorts first, so this is the first deadline at or after t.
  const auto end = m_deadlines.lower_bound(Deadline{t, std::string{}});
  return static_cast<std::size_t>(std::distance(m_deadlines.begin(), end));
}

void Table::throw_missing(const std::string& id) const
{
  if (const auto it = m_ended.find(id); it != m_ended.end()) {
    throw Error(errc::ended,
                "lease " + printable(id) + " already ended (" + to_string(it->second.reason) + ")",
                fix_for(it->second.secret_name));
  }
  throw Error(errc::not_found, "lease " + printable(id) + " not found", fix_for({}));
}

void Table::insert(Lease lease)
{
  m_deadlines.emplace(lease.expires_at, lease.id);
  m_by_secret[lease.secret_name].insert(lease.id);
  auto key = lease.id;
  m_live.emplace(std::move(key), std::move(lease));
}

Lease Table::unlink(LiveMap::iterator it)
{
  Lease lease = std::move(it->second);
  m_live.erase(it);
  m_deadlines.erase(Deadline{lease.expires_at, lease.id});
  if (const auto bucket = m_by_secret.find(lease.secret_name); bucket != m_by_secret.end()) {
    bucket->second.erase(lease.id);
    if (bucket->second.empty()) {
      m_by_secret.erase(bucket);
    }
  }
  return lease;
}

Ended Table::end(LiveMap::iterator it, EndReason reason)
{
  Lease lease = unlink(it);
  remember_ended(lease.id, lease.secret_name, reason);
  return Ended{std::move(lease), reason};
}

void Table::remember_ended(const std::string& id, const std::string& secret_name, EndReason reason)
{
  if (m_ended_memory == 0) {
    return;
  }
  const auto generation = ++m_ended_generation;
  m_ended.insert_or_assign(id, EndedRecord{reason, secret_name, generation});
  m_ended_order.emplace_back(id, generation);
  while (m_ended_order.size() > m_ended_memory) {
    const auto& [old_id, old_generation] = m_ended_order.front();
    if (const auto it = m_ended.find(old_id); it != m_ended.end() && it->second.generation == old_generation) {
      m_ended.erase(it);
    }
    m_ended_order.pop_front();
  }
}

} // namespace lease
