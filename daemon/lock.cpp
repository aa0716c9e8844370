#include "daemon/lock.hpp"

#include "store/identity.hpp"
#include "util/time.hpp"

#include <algorithm>

namespace server {

std::optional<util::Error> LockState::refusal(const Method& method) const
{
  if (!m_locked || method.allowed_while_locked) {
    return std::nullopt;
  }
  return util::Error(store::errc::locked, "the store is locked (" + m_reason + ")",
                     "ask the user to run: secrets unlock");
}

void LockState::set_locked(util::TimePoint at, std::string reason)
{
  m_locked = true;
  m_since = at;
  m_reason = std::move(reason);
}

void LockState::set_unlocked(util::TimePoint at, util::Duration idle, util::Duration max)
{
  m_locked = false;
  m_since = at;
  m_reason.clear();
  m_last_use = at;
  m_idle = idle;
  m_expires_at = at + max;
  m_timed = true;
  m_failures = 0;
  m_next_attempt = {};
}

std::optional<std::pair<util::TimePoint, const char*>> LockState::next_deadline() const
{
  if (m_locked || !m_timed) {
    return std::nullopt;
  }
  const auto idle_at = m_last_use + m_idle;
  return idle_at < m_expires_at ? std::pair{idle_at, "idle"} : std::pair{m_expires_at, "max"};
}

util::Duration LockState::wait_before_attempt(util::TimePoint now) const
{
  return now >= m_next_attempt ? util::Duration::zero()
                               : std::chrono::duration_cast<util::Duration>(m_next_attempt - now);
}

void LockState::attempt_failed(util::TimePoint now)
{
  // 1 s, 2 s, 4 s ... capped; the shift is bounded so it cannot overflow.
  const int shift = std::min(m_failures, 16);
  const auto delay = std::min<util::Duration>(k_first_delay * (int64_t{1} << shift), k_max_delay);
  ++m_failures;
  m_next_attempt = now + delay;
}

nlohmann::json LockState::status() const
{
  nlohmann::json j = {{"locked", m_locked}};
  j["locked_since"] = m_locked ? nlohmann::json(util::format_rfc3339_ms(m_since)) : nlohmann::json(nullptr);
  j["lock_reason"] = m_locked ? nlohmann::json(m_reason) : nlohmann::json(nullptr);
  const auto next = next_deadline();
  j["unlock_expires_at"] = next ? nlohmann::json(util::format_rfc3339_ms(next->first)) : nlohmann::json(nullptr);
  return j;
}

} // namespace server
