// util::parse_duration (Go durations in config.json, lease TTLs).
// Property: whatever parses prints (format_duration) as text that parses back
// to the same value.
#include "fuzz/fuzz.hpp"
#include "util/duration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const auto d = util::parse_duration(fuzz::as_text(data, size));
  if (d) {
    const auto back = util::parse_duration(util::format_duration(*d));
    fuzz::check(back && *back == *d, "parse_duration(format_duration(d)) == d");
  }
  return 0;
}
