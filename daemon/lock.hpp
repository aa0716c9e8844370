#pragma once
// The store's lock (DESIGN.md section 11): whether the daemon holds the
// identity, since when and why not, the unlock's deadlines, and the back-off
// after wrong passphrases. The dispatcher asks refusal() about every method,
// after the killswitch's gate (daemon/method.hpp); no handler checks it.
// Io thread only.

#include "daemon/method.hpp"
#include "util/clock.hpp"
#include "util/duration.hpp"
#include "util/error.hpp"

#include <optional>
#include <string>
#include <utility>

namespace server {

class LockState
{
public:
  // Consecutive wrong passphrases double the wait before the next attempt
  // is accepted: 1 s after the first, up to 5 minutes.
  static constexpr auto k_first_delay = std::chrono::seconds{1};
  static constexpr auto k_max_delay = std::chrono::minutes{5};
  // How long an unlock lasts without a value handed out, and at all
  // (config.json's `unlock` will cap them; a request may only ask for less).
  static constexpr util::Duration k_default_idle = std::chrono::minutes{30};
  static constexpr util::Duration k_default_max = std::chrono::hours{8};

  // Why `method` is refused now (store::errc::locked, fix `secrets unlock`), or nothing.
  std::optional<util::Error> refusal(const Method& method) const;

  bool locked() const { return m_locked; }
  void set_locked(util::TimePoint at, std::string reason);
  // Unlocked at `at`: it locks again `idle` after the last value handed out
  // (note_use), or `max` after `at`, whichever comes first.
  void set_unlocked(util::TimePoint at, util::Duration idle, util::Duration max);
  // A value was handed out (the dispatcher, after a method that reads values).
  void note_use(util::TimePoint at) { m_last_use = at; }
  // Unlocked with timers (a protected identity): when it locks next at the
  // latest, and why ("idle" or "max"); `now` past it: lock now. Nothing for a
  // plain identity, which has no lock.
  std::optional<std::pair<util::TimePoint, const char*>> next_deadline() const;

  // One unlock attempt at a time: scrypt runs on a worker meanwhile.
  bool attempting() const { return m_attempting; }
  void attempt_started() { m_attempting = true; }
  void attempt_finished() { m_attempting = false; }

  // How long an unlock attempt must still wait (zero: it may go on now).
  util::Duration wait_before_attempt(util::TimePoint now) const;
  void attempt_failed(util::TimePoint now);
  int failures() const { return m_failures; }

  // status's fields: locked, locked_since, lock_reason, unlock_expires_at.
  nlohmann::json status() const;

private:
  bool m_locked = false;
  util::TimePoint m_since{};
  std::string m_reason;
  util::TimePoint m_last_use{};
  util::Duration m_idle{};
  util::TimePoint m_expires_at{};
  bool m_attempting = false;
  bool m_timed = false; // set_unlocked was called: the timers run
  int m_failures = 0;
  util::TimePoint m_next_attempt{};
};

} // namespace server
