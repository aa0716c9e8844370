#include "killswitch/heartbeat.hpp"

#include "net/curl.hpp"
#include "util/error.hpp"

namespace killswitch {

namespace {

size_t discard(char*, size_t size, size_t nmemb, void*)
{
  return size * nmemb;
}

} // namespace

std::string probe(const std::string& url, util::Duration timeout)
{
  // libcurl is loaded here, on the heartbeat thread, and only once a heartbeat
  // runs: a daemon without one never maps it. A missing library is a failed
  // probe, so a heartbeat that cannot beat still trips (fail closed).
  const net::Curl* c = nullptr;
  try {
    c = &net::curl();
  } catch (const util::Error& e) {
    return std::string(e.what()) + " (fix: " + e.fix() + ")";
  }
  CURL* curl = c->easy_init();
  if (!curl) {
    return "curl_easy_init failed";
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  c->easy_setopt(curl, CURLOPT_URL, url.c_str());
  c->easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  c->easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(ms));
  c->easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(ms));
  c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); // we are one thread among others
  c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  c->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  c->easy_setopt(curl, CURLOPT_USERAGENT, "agent-secrets-heartbeat/" AGENT_SECRETS_VERSION);
  std::string error;
  const CURLcode rc = c->easy_perform(curl);
  if (rc != CURLE_OK) {
    error = c->easy_strerror(rc);
  } else {
    long status = 0;
    c->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
      error = "HTTP status " + std::to_string(status);
    }
  }
  c->easy_cleanup(curl);
  return error;
}

Heartbeat::Heartbeat(std::string url, util::Duration interval, util::Duration timeout,
                     std::function<void(const std::string&)> on_trip)
  : m_url(std::move(url)), m_interval(interval), m_timeout(timeout), m_on_trip(std::move(on_trip))
{
  m_status.enabled = true;
  m_status.url = m_url;
  m_thread = std::thread([this] { loop(); });
}

Heartbeat::~Heartbeat()
{
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_wake.notify_all();
  m_thread.join();
}

HeartbeatStatus Heartbeat::status() const
{
  std::lock_guard lock(m_mutex);
  return m_status;
}

void Heartbeat::reset()
{
  std::lock_guard lock(m_mutex);
  m_status.tripped = false;
  m_status.consecutive_failures = 0;
}

void Heartbeat::loop()
{
  std::unique_lock lock(m_mutex);
  while (!m_stop) {
    lock.unlock();
    const std::string error = probe(m_url, m_timeout);
    const auto now = std::chrono::system_clock::now();
    lock.lock();
    bool trip = false;
    if (error.empty()) {
      m_status.last_success = now;
      m_status.consecutive_failures = 0;
    } else {
      m_status.last_failure = now;
      m_status.last_error = error;
      ++m_status.consecutive_failures;
      trip = !m_status.tripped && m_status.consecutive_failures >= k_failures_to_trip;
      if (trip) {
        m_status.tripped = true;
      }
    }
    if (trip) {
      const std::string reason = std::to_string(m_status.consecutive_failures)
                                 + " consecutive heartbeat failures; last: " + error;
      lock.unlock();
      m_on_trip(reason);
      lock.lock();
    }
    m_wake.wait_for(lock, m_interval, [this] { return m_stop; });
  }
}

} // namespace killswitch
