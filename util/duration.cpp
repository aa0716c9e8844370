#include "util/duration.hpp"

#include <cstdint>
#include <limits>

namespace util {

namespace {

std::optional<int64_t> unit_nanos(std::string_view unit)
{
  if (unit == "ns") {
    return 1;
  }
  if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") { // us, µs (U+00B5), μs (U+03BC)
    return 1'000;
  }
  if (unit == "ms") {
    return 1'000'000;
  }
  if (unit == "s") {
    return 1'000'000'000;
  }
  if (unit == "m") {
    return 60'000'000'000;
  }
  if (unit == "h") {
    return 3'600'000'000'000;
  }
  return std::nullopt;
}

bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

} // namespace

std::optional<Duration> parse_duration(std::string_view s)
{
  constexpr uint64_t max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") {
    return Duration{0};
  }
  if (s.empty()) {
    return std::nullopt;
  }
  uint64_t total = 0;
  while (!s.empty()) {
    // Integer part, then an optional fraction, then a unit.
    uint64_t whole = 0;
    size_t i = 0;
    bool overflow = false;
    for (; i < s.size() && is_digit(s[i]); ++i) {
      if (whole > (max - (s[i] - '0')) / 10) {
        overflow = true;
      }
      whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
    }
    const bool had_whole = i > 0;
    uint64_t frac = 0;
    uint64_t scale = 1;
    bool had_frac = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      for (; i < s.size() && is_digit(s[i]); ++i) {
        had_frac = true;
        if (scale < 1'000'000'000'000'000'000ULL) { // extra digits add nothing
          frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
          scale *= 10;
        }
      }
    }
    if (overflow || (!had_whole && !had_frac)) {
      return std::nullopt;
    }
    size_t u = i;
    while (u < s.size() && s[u] != '.' && !is_digit(s[u])) {
      ++u;
    }
    const auto unit = unit_nanos(s.substr(i, u - i));
    if (!unit) {
      return std::nullopt;
    }
    const auto per = static_cast<uint64_t>(*unit);
    if (whole > max / per) {
      return std::nullopt;
    }
    uint64_t value = whole * per;
    if (frac > 0) {
      // frac/scale of a unit, in nanoseconds, computed without overflow.
      const long double f = static_cast<long double>(frac) * static_cast<long double>(per)
                            / static_cast<long double>(scale);
      value += static_cast<uint64_t>(f);
    }
    if (value > max || total > max - value) {
      return std::nullopt;
    }
    total += value;
    s.remove_prefix(u);
  }
  const auto n = static_cast<int64_t>(total);
  return Duration{negative ? -n : n};
}

std::string format_duration(Duration d)
{
  // A port of Go's time.Duration.String.
  int64_t v = d.count();
  if (v == 0) {
    return "0s";
  }
  const bool negative = v < 0;
  uint64_t u = negative ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  std::string out;

  // Writes u / 10^prec with trailing fractional zeros removed.
  auto fmt_frac = [](uint64_t x, int prec, std::string& dst) {
    std::string digits;
    bool print = false;
    for (int i = 0; i < prec; ++i) {
      const auto digit = static_cast<char>('0' + x % 10);
      print = print || digit != '0';
      if (print) {
        digits.insert(digits.begin(), digit);
      }
      x /= 10;
    }
    if (print) {
      dst = "." + digits + dst;
    }
    return x;
  };

  if (u < 1'000'000'000ULL) {
    int prec = 0;
    std::string unit;
    if (u < 1'000ULL) {
      return (negative ? "-" : "") + std::to_string(u) + "ns";
    } else if (u < 1'000'000ULL) {
      prec = 3;
      unit = "\xc2\xb5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    std::string frac;
    const uint64_t whole = fmt_frac(u, prec, frac);
    out = std::to_string(whole) + frac + unit;
  } else {
    std::string frac;
    u = fmt_frac(u, 9, frac);
    out = std::to_string(u % 60) + frac + "s";
    u /= 60;
    if (u > 0) {
      out = std::to_string(u % 60) + "m" + out;
      u /= 60;
      if (u > 0) {
        out = std::to_string(u) + "h" + out;
      }
    }
  }
  return (negative ? "-" : "") + out;
}

} // namespace util
