// secrets.status, secrets.health
#include "config/hooks.hpp"
#include "daemon/state.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

#include <unistd.h>

#include <optional>

namespace server {

namespace {

constexpr auto k_expiring_window = std::chrono::hours{1};
constexpr auto k_stale_after = std::chrono::hours{24 * 30};

json status(State& s, const Request&, const NoParams&)
{
  const auto now = s.clock.now();
  json out = {{"running", true},
              {"started_at", util::format_rfc3339_nano(s.started_at)},
              {"secrets_count", s.store_open() ? json(s.store().size()) : json(nullptr)}, // unknown while locked
              {"active_leases", s.leases().size()},
              {"heartbeat", s.killswitch().heartbeat_status()},
              {"proxy", s.proxy_status()},
              {"pid", ::getpid()},
              {"version", AGENT_SECRETS_VERSION},
              {"uptime", util::format_duration(std::chrono::duration_cast<std::chrono::seconds>(now - s.started_at))},
              {"socket", s.paths.socket},
              {"killswitch_tripped", s.killswitch().tripped()},
              {"wiped", s.killswitch().wiped()}};
  out.update(s.lock_state().status()); // locked, locked_since, lock_reason, unlock_expires_at
  if (auto warnings = s.proxy_warnings(); !warnings.empty()) {
    out["warnings"] = std::move(warnings);
    out["proxy_error"] = s.proxy_error();
  }
  return out;
}

json warning(const char* type, const char* severity, std::string message)
{
  return {{"type", type}, {"severity", severity}, {"message", std::move(message)}};
}

// The Go health report: expiring leases (under an hour), secrets with no
// rotation hook, and stale secrets (not leased, or not rotated, for 30 days).
// It reads the daemon's last_leased index, never the audit log.
json health(State& s, const Request&, const NoParams&)
{
  const auto now = s.clock.now();
  json warnings = json::array();
  size_t never_rotated = 0;
  size_t stale = 0;
  // A hook recorded but not allowed (a home moved from the Go version, or a
  // rotate_via some client set) would be refused at the next rotation: say so now.
  std::optional<config::Hooks> hooks;
  std::string hooks_error;
  try {
    hooks = config::load_hooks(s.paths);
  } catch (const util::Error& e) {
    hooks_error = e.what();
  }
  if (!s.store_open()) {
    // Locked: the secrets' names and dates are inside secrets.age.
    warnings.push_back(warning("locked", "warning", "the store is locked: secrets are not checked until secrets unlock"));
  }
  for (const auto& info : s.store_open() ? s.store().list() : std::vector<store::SecretInfo>{}) {
    if (!info.last_rotated) {
      ++never_rotated;
    }
    if (info.rotate_via.empty()) {
      auto w = warning("no_rotation_hook", "info", "secret " + info.name + " has no rotation hook");
      w["secret_name"] = info.name;
      warnings.push_back(std::move(w));
    } else if (const std::string* allowed = hooks ? hooks->find(info.name) : nullptr;
               !allowed || *allowed != info.rotate_via) {
      auto w = warning("hook_not_allowed", "warning",
                       "secret " + info.name + "'s rotation hook is not allowed by hooks.json"
                         + (hooks_error.empty() ? std::string() : " (" + hooks_error + ")")
                         + "; rotate refuses it");
      w["secret_name"] = info.name;
      w["fix"] = "secrets hook allow " + info.name + " " + config::shell_quote(info.rotate_via);
      warnings.push_back(std::move(w));
    }
    const auto leased = s.last_leased(info.name);
    const auto last_use = leased.value_or(info.created_at);
    const auto last_change = info.last_rotated ? *info.last_rotated : info.created_at;
    std::string why;
    if (now - last_use > k_stale_after) {
      why = leased ? "has not been leased" : "has never been leased";
    } else if (now - last_change > k_stale_after) {
      why = info.last_rotated ? "has not been rotated" : "has never been rotated";
    }
    if (!why.empty()) {
      ++stale;
      auto w = warning("stale_secret", "warning", "secret " + info.name + " " + why + " in 30 days");
      w["secret_name"] = info.name;
      warnings.push_back(std::move(w));
    }
  }
  size_t expiring = 0;
  for (const auto& l : s.leases().snapshot()) {
    if (l.expires_at - now < k_expiring_window) {
      ++expiring;
      auto w = warning("expiring_soon", "info",
                       "lease " + l.id + " on " + l.secret_name + " expires at " + util::format_rfc3339_ms(l.expires_at));
      w["secret_name"] = l.secret_name;
      w["lease_id"] = l.id;
      warnings.push_back(std::move(w));
    }
  }
  return {{"total_secrets", s.store_open() ? json(s.store().size()) : json(nullptr)},
          {"active_leases", s.leases().size()},
          {"expiring_soon", expiring},
          {"never_rotated", never_rotated},
          {"stale_secrets", stale},
          {"warnings", std::move(warnings)}};
}

} // namespace

void add_status_methods(MethodTable& table)
{
  table.emplace("secrets.status", Method{.handler = with_params(status),
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = true});
  table.emplace("secrets.health", Method{.handler = with_params(health),
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = true});
}

} // namespace server
