// Never-see mode, the daemon's half: starting the proxy, placeholders for
// proxy-only leases, and the answer to the proxy's "which lease is this
// request using?".
#include "audit/chain.hpp"
#include "daemon/state.hpp"
#include "store/age/primitives.hpp"
#include "util/encoding.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace server {

namespace {

constexpr size_t k_ended_placeholder_memory = 10'000;

proxy::Refusal refusal(int status, std::string code, std::string message, std::string fix)
{
  proxy::Refusal r;
  r.status = status;
  r.code = std::move(code);
  r.message = std::move(message);
  r.fix = std::move(fix);
  return r;
}

} // namespace

void State::start_proxy(const config::Proxy& cfg)
{
  if (cfg.listen == "off") {
    return;
  }
  auto server = std::make_unique<proxy::Server>(
    cfg, io,
    [this](const std::string& route, const std::vector<std::string>& placeholders, uid_t uid) {
      return resolve_proxy(route, placeholders, uid);
    },
    [this](const proxy::Grant& grant) {
      // On the proxy thread: an atomic and the clock only.
      return grant.store_generation == m_store->generation() && clock.now() < grant.expires_at;
    },
    // On the proxy's threads: the Log is thread-safe, and a proxy line has
    // no reply waiting on it, so it skips the daemon's thread.
    [&log = log](json line) { log.append(server::audit_line(std::move(line))); });
  try {
    server->start();
    spdlog::info("proxy listening on {}", server->address());
    m_proxy_server = std::move(server);
  } catch (const util::Error& e) {
    // Leases of ordinary secrets go on; proxy-only ones are refused, and
    // status and every lease result say why. This line is for whoever
    // started us: it must not read like routine start-up noise.
    m_proxy_error = e.what();
    m_proxy_error_fix = e.fix();
    spdlog::error("THE PROXY IS NOT RUNNING: {}. Proxy-only secrets cannot be leased until it runs. Fix: {}", e.what(),
                  e.fix());
  }
}

void State::stop_proxy()
{
  if (m_proxy_server) {
    m_proxy_server->stop();
  }
}

json State::proxy_warnings() const
{
  json warnings = json::array();
  if (!m_proxy_error.empty()) {
    warnings.push_back("the proxy is not running: " + m_proxy_error + "; proxy-only secrets cannot be leased (fix: "
                       + m_proxy_error_fix + ", then restart secrets serve)");
  }
  return warnings;
}

std::string State::new_placeholder()
{
  unsigned char b[16];
  store::age::primitives::random_bytes(b);
  return "as_" + util::hex_encode({reinterpret_cast<const char*>(b), sizeof(b)}, false);
}

void State::index_placeholder(const lease::Lease& l, uid_t uid)
{
  if (!l.placeholder_sha256.empty()) {
    m_placeholders[l.placeholder_sha256] = {l.id, uid};
  }
}

void State::reindex_placeholders()
{
  m_placeholders.clear();
  for (const auto& l : m_leases.snapshot()) {
    index_placeholder(l, ::geteuid());
  }
}

void State::placeholders_ended(const std::vector<lease::Ended>& ended)
{
  if (m_placeholders.empty() && m_grants.empty()) {
    return;
  }
  for (const auto& e : ended) {
    // Requests in flight on this lease are cut by their workers.
    auto [first, last] = m_grants.equal_range(e.lease.id);
    for (auto it = first; it != last; ++it) {
      if (auto grant = it->second.lock()) {
        grant->cancelled = true;
      }
    }
    m_grants.erase(first, last);
    if (!e.lease.placeholder_sha256.empty() && m_placeholders.erase(e.lease.placeholder_sha256) != 0) {
      remember_ended_placeholder(e.lease.placeholder_sha256, e.reason);
    }
  }
  if (m_proxy_server) {
    m_proxy_server->release_cancelled();
  }
}

void State::placeholders_cancel_grants()
{
  for (auto& [lease_id, weak] : m_grants) {
    if (auto grant = weak.lock()) {
      grant->cancelled = true;
    }
  }
  m_grants.clear();
  if (m_proxy_server) {
    m_proxy_server->release_cancelled();
  }
}

void State::placeholders_all_ended(lease::EndReason reason)
{
  placeholders_cancel_grants();
  for (const auto& [sha256, lease_id] : m_placeholders) {
    remember_ended_placeholder(sha256, reason);
  }
  m_placeholders.clear();
}

void State::remember_ended_placeholder(const std::string& sha256, lease::EndReason reason)
{
  m_ended_placeholders[sha256] = reason;
  m_ended_placeholder_order.push_back(sha256);
  if (m_ended_placeholder_order.size() > k_ended_placeholder_memory) {
    m_ended_placeholders.erase(m_ended_placeholder_order.front());
    m_ended_placeholder_order.pop_front();
  }
}

proxy::Resolution State::resolve_proxy(const std::string& route, const std::vector<std::string>& placeholders, uid_t uid)
{
  if (!m_store) {
    // Locked: no value to inject (and none is kept for the proxy).
    return refusal(423, "locked", "the store is locked", "ask the user to run: secrets unlock");
  }
  const auto* secret = m_store->find(route);
  if (!secret || !secret->info.proxy) {
    return refusal(404, "unknown_route", "no proxy-only secret is named " + route,
                   "secrets list  # then: secrets add " + route + " --proxy-only --base-url https://...");
  }
  const std::string fix = "export API_KEY=$(secrets lease " + route + ")  # and send it as the API key";
  if (placeholders.empty()) {
    return refusal(407, "missing_placeholder",
                   "the request carries no placeholder (as_...) in a header or the query", fix);
  }
  std::optional<proxy::Refusal> best;
  for (const auto& token : placeholders) {
    const std::string hash = audit::sha256_hex(token);
    std::optional<proxy::Refusal> r;
    if (const auto live = m_placeholders.find(hash); live != m_placeholders.end()) {
      const auto* l = m_leases.find(live->second.lease_id);
      if (live->second.uid != uid) {
        // Seen by another user (a process list, a shared log): useless to them.
        r = refusal(403, "other_user",
                    "the placeholder was leased to uid " + std::to_string(live->second.uid) + ", not to uid "
                      + std::to_string(uid),
                    "lease it as the user that sends the request: " + fix);
        l = nullptr; // nothing about the lease goes into the refusal
      } else if (!l || l->expires_at <= clock.now()) {
        r = refusal(407, "expired", "the placeholder's lease has expired", fix);
      } else if (l->secret_name != route) {
        r = refusal(407, "wrong_route",
                    "the placeholder belongs to secret " + l->secret_name + ", not " + route,
                    "send it to /" + l->secret_name + "/..., or lease " + route);
        r->authenticated = true; // a live placeholder of this user: audited
      } else {
        auto grant = std::make_shared<proxy::Grant>();
        grant->lease_id = l->id;
        grant->secret_name = route;
        grant->client_id = l->client_id;
        grant->placeholder = token;
        grant->value = store::age::SecretBuffer(secret->value.view());
        grant->set_spec(*secret->info.proxy);
        grant->expires_at = l->expires_at;
        grant->store_generation = m_store->generation();
        auto [first, last] = m_grants.equal_range(l->id);
        for (auto it = first; it != last;) {
          it = it->second.expired() ? m_grants.erase(it) : std::next(it);
        }
        m_grants.emplace(l->id, grant);
        return grant;
      }
      if (l) {
        r->lease_id = l->id;
        r->secret_name = l->secret_name;
        r->client_id = l->client_id;
      }
    } else if (const auto ended = m_ended_placeholders.find(hash); ended != m_ended_placeholders.end()) {
      const bool expired = ended->second == lease::EndReason::expired;
      r = refusal(407, expired ? "expired" : "revoked",
                  std::string("the placeholder's lease has ") + (expired ? "expired" : "been revoked"), fix);
      r->reason = lease::to_string(ended->second);
    }
    if (r && !best) {
      best = std::move(r);
    }
  }
  if (best) {
    return *best;
  }
  return refusal(407, "unknown_placeholder", "the placeholder was never issued by this daemon, or is too old", fix);
}

json State::proxy_status() const
{
  if (m_proxy_server) {
    return m_proxy_server->status();
  }
  json j = {{"enabled", false}};
  if (!m_proxy_error.empty()) {
    j["error"] = m_proxy_error;
  }
  return j;
}

} // namespace server
