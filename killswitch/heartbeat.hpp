#pragma once
// The heartbeat: a thread GETs `url` with libcurl every `interval`, with
// `timeout`. A non-2xx answer or a transport error is a failure. After
// k_failures_to_trip consecutive failures it calls on_trip once (from the
// heartbeat thread) and stays tripped until reset(); it keeps probing, so
// status() stays current.
//
// Thread-safe: status() and reset() may be called from any thread.

#include "util/clock.hpp"
#include "util/duration.hpp"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace killswitch {

constexpr int k_failures_to_trip = 3;

struct HeartbeatStatus
{
  bool enabled = false;
  std::string url;
  std::optional<util::TimePoint> last_success;
  std::optional<util::TimePoint> last_failure;
  std::string last_error;
  int consecutive_failures = 0;
  bool tripped = false;
};

// One GET; returns an empty string on a 2xx answer, else what went wrong.
std::string probe(const std::string& url, util::Duration timeout);

class Heartbeat
{
public:
  Heartbeat(std::string url, util::Duration interval, util::Duration timeout,
            std::function<void(const std::string& reason)> on_trip);
  ~Heartbeat(); // stops and joins the thread
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  HeartbeatStatus status() const;
  void reset();

private:
  void loop();

  std::string m_url;
  util::Duration m_interval;
  util::Duration m_timeout;
  std::function<void(const std::string&)> m_on_trip;
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  HeartbeatStatus m_status;
  bool m_stop = false;
  std::thread m_thread;
};

} // namespace killswitch
