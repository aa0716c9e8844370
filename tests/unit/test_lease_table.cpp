#include "lease/table.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace std::chrono_literals;
using lease::EndReason;
using lease::Table;
using util::Errc;

namespace {

// A table on a fake clock with ids "lease-1", "lease-2", ...
struct Fixture
{
  util::FakeClock clock;
  int next_id = 0;
  Table table{clock, [this] { return "lease-" + std::to_string(++next_id); }};
};

// The Errc and message of what `f` throws; fails the test if it throws nothing else.
template<typename F>
util::Error thrown(F&& f)
{
  try {
    f();
  } catch (const util::Error& e) {
    return e;
  }
  FAIL("expected util::Error");
  return util::Error(Errc::internal, "unreachable");
}

} // namespace

TEST_CASE("lease to_string names every reason")
{
  CHECK(std::string(lease::to_string(EndReason::revoked)) == "revoked");
  CHECK(std::string(lease::to_string(EndReason::expired)) == "expired");
  CHECK(std::string(lease::to_string(EndReason::killswitch)) == "killswitch");
  CHECK(std::string(lease::to_string(EndReason::secret_deleted)) == "secret_deleted");
  CHECK(std::string(lease::to_string(EndReason::holder_exited)) == "holder_exited");
}

TEST_CASE("lease resolve_ttl accepts durations within range")
{
  const auto def = 1h;
  const auto max = 24h;
  CHECK(lease::resolve_ttl("", def, max) == 1h);
  CHECK(lease::resolve_ttl("30m", def, max) == 30min);
  CHECK(lease::resolve_ttl("1h30m", def, max) == 90min);
  CHECK(lease::resolve_ttl("1s", def, max) == 1s);
  CHECK(lease::resolve_ttl("24h", def, max) == 24h);
  CHECK(lease::resolve_ttl("1440m", def, max) == 24h);
}

TEST_CASE("lease resolve_ttl rejects without clamping and states the range")
{
  for (const char* bad : {"0", "-1m", "abc", "25h", "24h0m0.000000001s", "999ms", "1", " 30m"}) {
    CAPTURE(bad);
    const auto e = thrown([&] { lease::resolve_ttl(bad, 1h, 24h); });
    CHECK(e.code() == Errc::invalid_params);
    CHECK(std::string(e.what()).find("between 1s and 24h0m0s") != std::string::npos);
  }
  const auto e = thrown([] { lease::resolve_ttl("48h", 1h, 24h); });
  CHECK(std::string(e.what()) == R"(invalid ttl "48h": must be a duration between 1s and 24h0m0s (e.g. 30m, 1h))");
}

TEST_CASE("lease resolve_ttl keeps echoed input short and printable")
{
  const auto e = thrown([] { lease::resolve_ttl(std::string(1000, 'x') + "\xc3\xa9", 1h, 24h); });
  const std::string message = e.what();
  CHECK(message.size() < 200);
  CHECK(message.find("...") != std::string::npos);
  const auto quoted = thrown([] { lease::resolve_ttl("1h\"\n\xff", 1h, 24h); });
  CHECK(std::string(quoted.what()).starts_with(R"(invalid ttl "1h\"\x0a\xff":)"));
}

TEST_CASE("lease acquire and find")
{
  Fixture f;
  const auto t0 = f.clock.now();
  const auto& l = f.table.acquire("openai", "agent-1", 30min);
  CHECK(l.id == "lease-1");
  CHECK(l.secret_name == "openai");
  CHECK(l.client_id == "agent-1");
  CHECK(l.created_at == t0);
  CHECK(l.expires_at == t0 + 30min);

  const auto* found = f.table.find("lease-1");
  REQUIRE(found != nullptr);
  CHECK(found == &l);
  CHECK(f.table.find("lease-2") == nullptr);
  CHECK(f.table.size() == 1);
  CHECK(f.table.count_for("openai") == 1);
  CHECK(f.table.count_for("github") == 0);
}

TEST_CASE("lease acquire rejects a non-positive ttl and a repeated id")
{
  Fixture f;
  CHECK(thrown([&] { f.table.acquire("s", "c", 0s); }).code() == Errc::invalid_params);
  CHECK(thrown([&] { f.table.acquire("s", "c", -1s); }).code() == Errc::invalid_params);
  CHECK(f.table.size() == 0);

  util::FakeClock clock;
  Table same_id{clock, [] { return std::string("fixed"); }};
  same_id.acquire("s", "c", 1min);
  CHECK(thrown([&] { same_id.acquire("s", "c", 1min); }).code() == Errc::internal);
  CHECK(same_id.size() == 1);
}

TEST_CASE("lease revoke, then revoke again, and unknown ids")
{
  Fixture f;
  f.table.acquire("openai", "agent", 1h);
  const auto ended = f.table.revoke("lease-1");
  CHECK(ended.lease.id == "lease-1");
  CHECK(ended.lease.secret_name == "openai");
  CHECK(ended.reason == EndReason::revoked);
  CHECK(f.table.size() == 0);
  CHECK(f.table.count_for("openai") == 0);
  CHECK_FALSE(f.table.next_deadline());

  const auto again = thrown([&] { f.table.revoke("lease-1"); });
  CHECK(again.code() == lease::errc::ended);
  CHECK(std::string(again.what()) == "lease lease-1 already ended (revoked)");
  CHECK(again.fix() == "secrets lease openai");

  const auto unknown = thrown([&] { f.table.revoke("nope"); });
  CHECK(unknown.code() == lease::errc::not_found);
  CHECK(std::string(unknown.what()) == "lease nope not found");
}

TEST_CASE("lease ended message names how it ended")
{
  Fixture f;
  f.table.acquire("s", "c", 1min);
  f.table.acquire("s", "c", 1h);
  f.table.expire_due(f.clock.now() + 1min);
  CHECK(std::string(thrown([&] { f.table.revoke("lease-1"); }).what()) == "lease lease-1 already ended (expired)");
  f.table.revoke("lease-2", EndReason::holder_exited);
  CHECK(std::string(thrown([&] { f.table.revoke("lease-2"); }).what())
        == "lease lease-2 already ended (holder_exited)");
}

TEST_CASE("lease ended ids are remembered only up to a bound")
{
  util::FakeClock clock;
  int n = 0;
  Table table{clock, [&] { return std::to_string(++n); }, 3};
  for (int i = 0; i < 5; ++i) {
    table.acquire("s", "c", 1h);
  }
  for (const char* id : {"1", "2", "3", "4", "5"}) {
    table.revoke(id);
  }
  CHECK(thrown([&] { table.revoke("1"); }).code() == lease::errc::not_found);
  CHECK(thrown([&] { table.revoke("2"); }).code() == lease::errc::not_found);
  for (const char* id : {"3", "4", "5"}) {
    CHECK(thrown([&] { table.revoke(id); }).code() == lease::errc::ended);
  }

  // An id that ends twice (restored in between) is evicted by its newest end only.
  table.restore(lease::Lease{"3", "s", "c", clock.now(), clock.now() + 1h});
  table.revoke("3", EndReason::killswitch); // remembered: 4, 5, 3
  table.acquire("s", "c", 1h);              // "6"
  table.revoke("6");                        // remembered: 5, 3, 6
  const auto e = thrown([&] { table.revoke("3"); });
  CHECK(e.code() == lease::errc::ended);
  CHECK(std::string(e.what()) == "lease 3 already ended (killswitch)");
}

TEST_CASE("lease expire_due ends leases at the exact boundary")
{
  Fixture f;
  const auto t0 = f.clock.now();
  f.table.acquire("s", "c", 10s);
  f.table.acquire("s", "c", 20s);

  CHECK(f.table.expire_due(t0 + 10s - 1ns).empty());
  CHECK(f.table.size() == 2);

  const auto ended = f.table.expire_due(t0 + 10s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].lease.id == "lease-1");
  CHECK(ended[0].reason == EndReason::expired);
  CHECK(f.table.size() == 1);
  CHECK(f.table.next_deadline() == t0 + 20s);

  CHECK(f.table.expire_due(t0 + 1h).size() == 1);
  CHECK(f.table.size() == 0);
  CHECK(f.table.expire_due(t0 + 2h).empty());
}

TEST_CASE("lease next_deadline is the earliest expiry")
{
  Fixture f;
  const auto t0 = f.clock.now();
  CHECK_FALSE(f.table.next_deadline());
  f.table.acquire("s", "c", 30min);
  CHECK(f.table.next_deadline() == t0 + 30min);
  f.table.acquire("s", "c", 5min);
  CHECK(f.table.next_deadline() == t0 + 5min);
  f.clock.advance(1min);
  f.table.acquire("s", "c", 1min); // expires at t0 + 2min
  CHECK(f.table.next_deadline() == t0 + 2min);
  f.table.revoke("lease-3");
  CHECK(f.table.next_deadline() == t0 + 5min);

  // Several at one instant end together, in id order.
  f.table.acquire("s", "c", 4min); // lease-4, t0 + 5min
  const auto ended = f.table.expire_due(t0 + 5min);
  REQUIRE(ended.size() == 2);
  CHECK(ended[0].lease.id == "lease-2");
  CHECK(ended[1].lease.id == "lease-4");
  CHECK(f.table.next_deadline() == t0 + 30min);
}

TEST_CASE("lease revoke_secret only ends that secret's leases")
{
  Fixture f;
  f.table.acquire("openai", "a", 2h);
  f.table.acquire("github", "a", 1h);
  f.table.acquire("openai", "b", 1h);
  CHECK(f.table.count_for("openai") == 2);

  const auto ended = f.table.revoke_secret("openai");
  REQUIRE(ended.size() == 2);
  CHECK(ended[0].lease.id == "lease-3"); // deadline order
  CHECK(ended[1].lease.id == "lease-1");
  CHECK(ended[0].reason == EndReason::secret_deleted);
  CHECK(f.table.count_for("openai") == 0);
  CHECK(f.table.count_for("github") == 1);
  CHECK(f.table.find("lease-2") != nullptr);
  CHECK(f.table.revoke_secret("openai").empty());
  CHECK(f.table.revoke_secret("missing").empty());
  CHECK(thrown([&] { f.table.revoke("lease-1"); }).code() == lease::errc::ended);
}

TEST_CASE("lease revoke_all ends everything")
{
  Fixture f;
  f.table.acquire("a", "c", 3h);
  f.table.acquire("b", "c", 1h);
  f.table.acquire("a", "c", 2h);
  const auto ended = f.table.revoke_all();
  REQUIRE(ended.size() == 3);
  CHECK(ended[0].lease.id == "lease-2");
  CHECK(ended[1].lease.id == "lease-3");
  CHECK(ended[2].lease.id == "lease-1");
  CHECK(ended[0].reason == EndReason::killswitch);
  CHECK(ended[0].lease.secret_name == "b");
  CHECK(f.table.size() == 0);
  CHECK(f.table.count_for("a") == 0);
  CHECK_FALSE(f.table.next_deadline());
  CHECK(f.table.snapshot().empty());
  CHECK(std::string(thrown([&] { f.table.revoke("lease-1"); }).what()) == "lease lease-1 already ended (killswitch)");
  CHECK(f.table.revoke_all(EndReason::revoked).empty());

  // The table is usable afterwards.
  f.table.acquire("a", "c", 1h);
  CHECK(f.table.count_for("a") == 1);
}

TEST_CASE("lease take_all hands every lease over and remembers the newest ended ids")
{
  util::FakeClock clock;
  int next_id = 0;
  Table table{clock, [&next_id] { return "lease-" + std::to_string(++next_id); }, 2};
  table.acquire("a", "c", 3h, 42, 7); // lease-1, the latest deadline
  table.acquire("b", "c", 1h);        // lease-2, the earliest
  table.acquire("a", "c", 2h);        // lease-3
  const lease::Revoked revoked = table.take_all(EndReason::revoked);
  CHECK(revoked.size() == 3);
  CHECK(revoked.reason() == EndReason::revoked);
  REQUIRE(revoked.find("lease-1") != nullptr);
  CHECK(revoked.find("lease-1")->bind_pid == 42);
  CHECK(revoked.find("lease-2")->secret_name == "b");
  CHECK(revoked.find("lease-4") == nullptr);
  std::set<std::string> seen;
  revoked.for_each([&seen](const lease::Lease& l) { seen.insert(l.id); });
  CHECK(seen == std::set<std::string>{"lease-1", "lease-2", "lease-3"});

  CHECK(table.size() == 0);
  CHECK(table.count_for("a") == 0);
  CHECK_FALSE(table.next_deadline());
  CHECK(table.count_expiring_before(clock.now() + 24h) == 0);
  // ended_memory is 2: the two latest deadlines are remembered, the earliest is not.
  CHECK(std::string(thrown([&] { table.revoke("lease-1"); }).what()) == "lease lease-1 already ended (revoked)");
  CHECK(thrown([&] { table.revoke("lease-3"); }).code() == lease::errc::ended);
  CHECK(thrown([&] { table.revoke("lease-2"); }).code() == lease::errc::not_found);

  // The table is usable afterwards, and independent of what it handed over.
  table.acquire("a", "c", 1h);
  CHECK(table.count_for("a") == 1);
  CHECK(revoked.size() == 3);
  CHECK(table.take_all().size() == 1);
}

TEST_CASE("lease restore inserts live and already-expired leases")
{
  Fixture f;
  const auto now = f.clock.now();
  f.table.restore({"7f0c-uuid", "openai", "agent", now - 2h, now + 1h});
  f.table.restore({"old", "github", "agent", now - 2h, now - 1h});
  CHECK(f.table.size() == 2);
  CHECK(f.table.next_deadline() == now - 1h);
  CHECK(f.table.count_expiring_before(now) == 1);

  // The restored-but-expired lease is reported once, so the daemon audits it.
  const auto ended = f.table.expire_due(now);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].lease.id == "old");
  CHECK(ended[0].reason == EndReason::expired);
  CHECK(f.table.find("7f0c-uuid") != nullptr);

  // A duplicate id replaces, including its indexes.
  f.table.restore({"7f0c-uuid", "anthropic", "agent", now - 2h, now + 2h});
  CHECK(f.table.size() == 1);
  CHECK(f.table.count_for("openai") == 0);
  CHECK(f.table.count_for("anthropic") == 1);
  CHECK(f.table.next_deadline() == now + 2h);

  CHECK(thrown([&] { f.table.restore({"", "s", "c", now, now + 1h}); }).code() == Errc::invalid_params);
}

TEST_CASE("lease forget removes without reporting")
{
  Fixture f;
  f.table.acquire("s", "c", 1h);
  f.table.acquire("s", "c", 1h);
  CHECK(f.table.forget("lease-1"));
  CHECK_FALSE(f.table.forget("lease-1"));
  CHECK(f.table.size() == 1);
  CHECK(f.table.count_for("s") == 1);
  CHECK(thrown([&] { f.table.revoke("lease-1"); }).code() == lease::errc::not_found);

  CHECK(f.table.forget("lease-2", EndReason::expired));
  const auto e = thrown([&] { f.table.revoke("lease-2"); });
  CHECK(e.code() == lease::errc::ended);
  CHECK(e.fix() == "secrets lease s");
  CHECK(f.table.expire_due(f.clock.now() + 2h).empty());
}

TEST_CASE("lease renew within and beyond the maximum lifetime")
{
  Fixture f;
  const auto t0 = f.clock.now();
  f.table.acquire("s", "c", 1h);

  f.clock.advance(30min);
  const auto& renewed = f.table.renew("lease-1", 2h, 24h);
  CHECK(renewed.expires_at == t0 + 30min + 2h);
  CHECK(renewed.created_at == t0);
  CHECK(f.table.next_deadline() == t0 + 150min);
  CHECK(f.table.expire_due(t0 + 1h).empty()); // the old deadline is gone

  // Shortening is allowed: the new expiry is now + ttl.
  CHECK(f.table.renew("lease-1", 10min, 24h).expires_at == t0 + 40min);
  CHECK(f.table.renew("lease-1", 23h, 24h).expires_at == t0 + 23h + 30min);

  // Exactly to created_at + max is fine; a nanosecond past is rejected, not capped.
  f.clock.set(t0 + 23h);
  CHECK(f.table.renew("lease-1", 1h, 24h).expires_at == t0 + 24h);
  const auto e = thrown([&] { f.table.renew("lease-1", 1h + 1ns, 24h); });
  CHECK(e.code() == Errc::invalid_params);
  CHECK(std::string(e.what()) == "cannot renew lease lease-1 for 1h0m0.000000001s: a lease lives at most "
                                 "24h0m0s from creation, 1h0m0s remains");
  CHECK(f.table.find("lease-1")->expires_at == t0 + 24h);

  CHECK(thrown([&] { f.table.renew("lease-1", 0s, 24h); }).code() == Errc::invalid_params);
  CHECK(thrown([&] { f.table.renew("nope", 1h, 24h); }).code() == lease::errc::not_found);
}

TEST_CASE("lease renew never revives a lease past its deadline")
{
  Fixture f;
  const auto t0 = f.clock.now();
  f.table.acquire("s", "c", 1min);
  f.clock.advance(1min); // due, but the pruner has not run yet
  const auto e = thrown([&] { f.table.renew("lease-1", 1h, 24h); });
  CHECK(e.code() == lease::errc::ended);
  CHECK(std::string(e.what()) == "lease lease-1 already ended (expired)");
  CHECK(f.table.expire_due(f.clock.now()).size() == 1);
  CHECK(thrown([&] { f.table.renew("lease-1", 1h, 24h); }).code() == lease::errc::ended);
  CHECK(f.table.next_deadline() == std::nullopt);
  (void)t0;
}

TEST_CASE("lease snapshot and count_expiring_before")
{
  Fixture f;
  const auto t0 = f.clock.now();
  f.table.restore({"b", "s", "c", t0, t0 + 10min});
  f.table.restore({"a", "s", "c", t0, t0 + 5min});
  f.table.restore({"z", "s", "c", t0 - 1h, t0 + 1h});

  const auto snap = f.table.snapshot();
  REQUIRE(snap.size() == 3);
  CHECK(snap[0].id == "z");
  CHECK(snap[1].id == "a");
  CHECK(snap[2].id == "b");

  CHECK(f.table.count_expiring_before(t0) == 0);
  CHECK(f.table.count_expiring_before(t0 + 5min) == 0); // strictly before
  CHECK(f.table.count_expiring_before(t0 + 5min + 1ns) == 1);
  CHECK(f.table.count_expiring_before(t0 + 1h + 1ns) == 3);
}

TEST_CASE("lease table holds 100,000 leases")
{
  constexpr int k_count = 100'000;
  Fixture f;
  const auto t0 = f.clock.now();
  for (int i = 0; i < k_count; ++i) {
    // Alternate short and long leases so expire_due takes exactly half.
    f.table.acquire("secret-" + std::to_string(i % 100), "c", i % 2 == 0 ? 1min : 1h);
  }
  CHECK(f.table.size() == k_count);
  CHECK(f.table.count_for("secret-7") == k_count / 100);
  CHECK(f.table.count_expiring_before(t0 + 1min + 1ns) == k_count / 2);

  f.clock.advance(1min);
  const auto expired = f.table.expire_due(f.clock.now());
  CHECK(expired.size() == k_count / 2);
  CHECK(f.table.size() == k_count / 2);
  CHECK(f.table.next_deadline() == t0 + 1h);

  const auto revoked = f.table.revoke_all();
  CHECK(revoked.size() == k_count / 2);
  CHECK(f.table.size() == 0);
  CHECK_FALSE(f.table.next_deadline());

  // The newest ended ids are remembered; memory of older ones is bounded.
  CHECK(thrown([&] { f.table.revoke(revoked.back().lease.id); }).code() == lease::errc::ended);
  CHECK(thrown([&] { f.table.revoke(expired.front().lease.id); }).code() == lease::errc::not_found);
}
