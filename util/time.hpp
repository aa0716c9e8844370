#pragma once
// RFC 3339 times as the Go version writes them (time.Time JSON: RFC 3339 with
// nanoseconds, any offset) and as our audit log writes them (UTC, milliseconds).

#include "util/clock.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace util {

// "2026-11-23T09:13:43.123Z"
std::string format_rfc3339_ms(TimePoint t);
// "2026-11-23T09:13:43.123456789Z" (trailing zeros trimmed, as Go's RFC3339Nano)
std::string format_rfc3339_nano(TimePoint t);
// Accepts "Z" or "+hh:mm"/"-hh:mm" offsets and 0-9 fractional digits.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

} // namespace util
