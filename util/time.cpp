#include "util/time.hpp"

#include <cstdio>
#include <ctime>
#include <limits>

namespace util {

namespace {

std::string format(TimePoint t, int digits, bool trim)
{
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns / 1'000'000'000;
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out = buf;
  char fbuf[16];
  std::snprintf(fbuf, sizeof(fbuf), "%09lld", static_cast<long long>(frac));
  std::string f(fbuf, static_cast<size_t>(digits));
  if (trim) {
    while (!f.empty() && f.back() == '0') {
      f.pop_back();
    }
  }
  if (!f.empty()) {
    out += "." + f;
  }
  return out + "Z";
}

bool digits(std::string_view s, size_t pos, size_t n, int& out)
{
  if (pos + n > s.size()) {
    return false;
  }
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

} // namespace

std::string format_rfc3339_ms(TimePoint t)
{
  return format(t, 3, false);
}

std::string format_rfc3339_nano(TimePoint t)
{
  return format(t, 9, true);
}

std::optional<TimePoint> parse_rfc3339(std::string_view s)
{
  int year, mon, day, hour, min, sec;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mon) || s[7] != '-'
      || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, hour)
      || s[13] != ':' || !digits(s, 14, 2, min) || s[16] != ':' || !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int n = 0;
    int64_t scale = 100'000'000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n < 9) {
        nanos += (s[i] - '0') * scale;
        scale /= 10;
      }
      ++n;
      ++i;
    }
    if (n == 0) {
      return std::nullopt;
    }
  }
  int offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om)
        || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset;
  // TimePoint counts nanoseconds in 64 bits: about 1678 to 2261. Outside that
  // (Go's zero time "0001-01-01T00:00:00Z" among others) is "no time".
  constexpr int64_t k_limit = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (secs <= -k_limit || secs >= k_limit) {
    return std::nullopt;
  }
  return TimePoint{} + std::chrono::duration_cast<TimePoint::duration>(
                         std::chrono::seconds{secs} + std::chrono::nanoseconds{nanos});
}

} // namespace util
