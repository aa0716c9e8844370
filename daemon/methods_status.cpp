// secrets.status, secrets.health
#include "daemon/state.hpp"
#include "util/time.hpp"

#include <unistd.h>

namespace server {

namespace {

constexpr auto k_expiring_window = std::chrono::minutes{5};
constexpr auto k_stale_after = std::chrono::hours{24 * 90};

json status(State& s, const Request&)
{
  const auto now = s.clock.now();
  return {{"running", true},
          {"started_at", util::format_rfc3339_nano(s.started_at)},
          {"secrets_count", s.store->size()},
          {"active_leases", s.leases.size()},
          {"heartbeat", s.heartbeat_status()},
          {"pid", ::getpid()},
          {"version", AGENT_SECRETS_VERSION},
          {"uptime", util::format_duration(std::chrono::duration_cast<std::chrono::seconds>(now - s.started_at))},
          {"socket", s.paths.socket},
          {"killswitch_tripped", !s.tripped_reason.empty() || s.wiped},
          {"wiped", s.wiped}};
}

json health(State& s, const Request&)
{
  const auto now = s.clock.now();
  json warnings = json::array();
  size_t never_rotated = 0;
  size_t stale = 0;
  for (const auto& info : s.store->list()) {
    if (!info.last_rotated) {
      ++never_rotated;
    }
    const auto last_change = info.last_rotated ? *info.last_rotated : info.updated_at;
    if (now - last_change > k_stale_after) {
      ++stale;
      warnings.push_back({{"type", "stale_secret"},
                          {"secret_name", info.name},
                          {"message", "secret " + info.name + " has not changed in over 90 days"},
                          {"severity", "warning"}});
    }
  }
  const size_t expiring = s.leases.count_expiring_before(now + k_expiring_window);
  if (expiring > 0) {
    warnings.push_back({{"type", "expiring_soon"},
                        {"message", std::to_string(expiring) + " leases expire within 5 minutes"},
                        {"severity", "info"}});
  }
  return {{"total_secrets", s.store->size()},
          {"active_leases", s.leases.size()},
          {"expiring_soon", expiring},
          {"never_rotated", never_rotated},
          {"stale_secrets", stale},
          {"warnings", std::move(warnings)}};
}

} // namespace

void add_status_methods(MethodTable& table)
{
  table.emplace("secrets.status", Method{status, nullptr});
  table.emplace("secrets.health", Method{health, nullptr});
}

} // namespace server
