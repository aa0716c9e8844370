// LockState (daemon/lock.hpp): the gate's verdict, the back-off after wrong
// passphrases, and the unlock's deadlines.
#include "daemon/lock.hpp"
#include "store/identity.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

TEST_CASE("lock: refuses only what is not allowed while locked, and only while locked")
{
  server::LockState lock;
  server::Method served{.allowed_while_locked = true};
  server::Method needs_store{};
  CHECK_FALSE(lock.refusal(needs_store));
  lock.set_locked(util::TimePoint{} + 1h, "idle");
  CHECK_FALSE(lock.refusal(served));
  const auto refused = lock.refusal(needs_store);
  REQUIRE(refused);
  CHECK(refused->code() == store::errc::locked);
  CHECK(std::string(refused->what()) == "the store is locked (idle)");
  CHECK(lock.status()["lock_reason"] == "idle");
}

TEST_CASE("lock: consecutive wrong passphrases double the wait, from 1 s up to 5 minutes; an unlock resets it")
{
  server::LockState lock;
  const auto t0 = util::TimePoint{} + 1000h;
  CHECK(lock.wait_before_attempt(t0) == util::Duration::zero());
  util::Duration expected = 1s;
  for (int i = 0; i < 12; ++i) {
    lock.attempt_failed(t0);
    CAPTURE(i);
    CHECK(lock.wait_before_attempt(t0) == std::min<util::Duration>(expected, 5min));
    expected *= 2;
  }
  CHECK(lock.wait_before_attempt(t0 + 5min) == util::Duration::zero());
  lock.set_unlocked(t0, 30min, 8h);
  CHECK(lock.failures() == 0);
  CHECK(lock.wait_before_attempt(t0) == util::Duration::zero());
}

TEST_CASE("lock: the next deadline is idle after the last use or max after the unlock, whichever is first")
{
  server::LockState lock;
  CHECK_FALSE(lock.next_deadline()); // a plain identity: no timers
  const auto t0 = util::TimePoint{} + 1000h;
  lock.set_unlocked(t0, 30min, 1h);
  auto next = lock.next_deadline();
  REQUIRE(next);
  CHECK(next->first == t0 + 30min);
  CHECK(std::string(next->second) == "idle");
  lock.note_use(t0 + 45min);
  next = lock.next_deadline();
  CHECK(next->first == t0 + 1h);
  CHECK(std::string(next->second) == "max");
  lock.set_locked(t0 + 1h, "max");
  CHECK_FALSE(lock.next_deadline());
  CHECK(lock.status()["unlock_expires_at"].is_null());
}
