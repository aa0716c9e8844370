#include "util/duration.hpp"
#include "util/time.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using util::format_duration;
using util::parse_duration;

TEST_CASE("parse_duration accepts Go durations")
{
  CHECK(parse_duration("90s") == 90s);
  CHECK(parse_duration("30m") == 30min);
  CHECK(parse_duration("1h30m") == 90min);
  CHECK(parse_duration("1.5h") == 90min);
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("1us") == 1us);
  CHECK(parse_duration("1\xc2\xb5s") == 1us);
  CHECK(parse_duration("0") == 0s);
  CHECK(parse_duration("-5s") == -5s);
  CHECK(parse_duration(".5s") == 500ms);
  CHECK(parse_duration("2562047h") == 2562047h);
}

TEST_CASE("parse_duration rejects malformed input")
{
  for (const char* bad : {"", "1", "h", "1x", "1h 30m", "1.h2", ".s", "--1s", "1h-30m", "9999999999999h",
                          "1e3s", " 1s", "1s ", "+"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("format_duration matches Go's Duration.String")
{
  CHECK(format_duration(0s) == "0s");
  CHECK(format_duration(1h) == "1h0m0s");
  CHECK(format_duration(30min) == "30m0s");
  CHECK(format_duration(90s) == "1m30s");
  CHECK(format_duration(1500ms) == "1.5s");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(-5s) == "-5s");
  CHECK(format_duration(std::chrono::nanoseconds{7}) == "7ns");
}

TEST_CASE("rfc3339 round trips and accepts offsets")
{
  const auto t = util::parse_rfc3339("2026-11-23T09:13:43.123Z");
  REQUIRE(t);
  CHECK(util::format_rfc3339_ms(*t) == "2026-11-23T09:13:43.123Z");
  CHECK(util::format_rfc3339_nano(*t) == "2026-11-23T09:13:43.123Z");
  const auto go = util::parse_rfc3339("2026-11-23T10:13:43.123456789+01:00");
  REQUIRE(go);
  CHECK(util::format_rfc3339_nano(*go) == "2026-11-23T09:13:43.123456789Z");
  CHECK_FALSE(util::parse_rfc3339("2026-11-23 09:13:43Z"));
  // Go's zero time is outside a nanosecond TimePoint: no time, and no overflow.
  CHECK_FALSE(util::parse_rfc3339("0001-01-01T00:00:00Z"));
  CHECK_FALSE(util::parse_rfc3339("9999-12-31T23:59:59Z"));
  CHECK_FALSE(util::parse_rfc3339("2026-11-23T09:13:43"));
}
