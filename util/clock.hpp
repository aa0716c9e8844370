#pragma once
// Injected wall clock (STYLE.md point 8): lease logic takes a Clock so tests
// advance a FakeClock instead of sleeping. Leases outlive the daemon, so their
// deadlines are wall-clock times.

#include <chrono>

namespace util {

using TimePoint = std::chrono::system_clock::time_point;

class Clock
{
public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock : public Clock
{
public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

class FakeClock : public Clock
{
public:
  explicit FakeClock(TimePoint start = TimePoint{std::chrono::seconds{1'700'000'000}}) : m_now(start) {}
  TimePoint now() const override { return m_now; }
  void advance(std::chrono::nanoseconds d) { m_now += std::chrono::duration_cast<TimePoint::duration>(d); }
  void set(TimePoint t) { m_now = t; }

private:
  TimePoint m_now;
};

} // namespace util
