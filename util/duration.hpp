#pragma once
// Go-style durations ("90s", "30m", "1h30m", "1.5h", "250ms"), as Go's
// time.ParseDuration accepts them and time.Duration.String prints them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace util {

using Duration = std::chrono::nanoseconds;

// Returns nullopt on any malformed input or overflow; never clamps.
std::optional<Duration> parse_duration(std::string_view text);

// Go's Duration.String(): "1h0m0s", "30m0s", "1.5s", "250ms", "0s".
std::string format_duration(Duration d);

} // namespace util
