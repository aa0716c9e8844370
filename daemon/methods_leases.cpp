// secrets.lease, secrets.revoke, secrets.leases, secrets.watch
#include "daemon/session.hpp"
#include "daemon/state.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

namespace server {

namespace {

json lease_json(const lease::Lease& l)
{
  return {{"lease_id", l.id},
          {"secret_name", l.secret_name},
          {"client_id", l.client_id},
          {"created_at", util::format_rfc3339_nano(l.created_at)},
          {"expires_at", util::format_rfc3339_nano(l.expires_at)}};
}

json acquire(State& s, const Request& r)
{
  const std::string name = required_string(r.params, "secret_name");
  const std::string client_id = optional_string(r.params, "client_id");
  const auto ttl = lease::resolve_ttl(optional_string(r.params, "ttl"), s.settings.default_lease_ttl,
                                      s.settings.max_lease_ttl);
  s.check_not_tripped();
  const auto* secret = s.store->find(name);
  if (!secret) {
    throw util::Error(util::Errc::secret_not_found, "secret " + name + " not found",
                      "secrets add " + name + "  # or: secrets list");
  }
  const auto& l = s.leases.acquire(name, client_id, ttl);
  // The acquire line is the write-ahead log record: the reply (with the
  // value) leaves only once it is durable.
  s.audit({{"action", "lease_acquire"},
           {"secret_name", name},
           {"client_id", client_id},
           {"lease_id", l.id},
           {"details", "TTL: " + util::format_duration(ttl)},
           {"created_at", util::format_rfc3339_nano(l.created_at)},
           {"expires_at", util::format_rfc3339_nano(l.expires_at)}},
          &r.peer);
  s.last_leased[name] = l.created_at;
  s.mark_dirty();
  s.rearm_prune_timer();
  return {{"lease_id", l.id},
          {"value", std::string(secret->value.view())},
          {"expires_at", util::format_rfc3339_nano(l.expires_at)},
          {"secret_name", name},
          {"client_id", client_id},
          {"ttl", util::format_duration(ttl)}};
}

json revoke(State& s, const Request& r)
{
  const std::string id = required_string(r.params, "lease_id");
  const auto ended = s.leases.revoke(id, lease::EndReason::revoked);
  s.leases_ended({ended}, &r.peer);
  return {{"success", true}, {"message", "lease revoked: " + id}, {"lease_id", id}};
}

json list_leases(State& s, const Request&)
{
  json out = json::array();
  for (const auto& l : s.leases.snapshot()) {
    out.push_back(lease_json(l));
  }
  return {{"leases", std::move(out)}};
}

json watch(State& s, const Request& r)
{
  const auto ids = required_string_array(r.params, "lease_ids");
  r.session->set_watching();
  json watching = json::array();
  for (const auto& lease_id : ids) {
    if (s.leases.find(lease_id)) {
      s.watch(lease_id, r.session);
      watching.push_back(lease_id);
    } else {
      // Already gone: say so at once, after the reply.
      asio::post(s.io, [session = r.session, lease_id] {
        session->notify({{"jsonrpc", "2.0"},
                         {"method", "lease.ended"},
                         {"params", {{"lease_id", lease_id}, {"reason", "not_live"}}}});
      });
    }
  }
  return {{"success", true}, {"watching", std::move(watching)}};
}

// secrets env: the daemon deletes `path` when all of `lease_ids` have ended.
json register_file(State& s, const Request& r)
{
  const std::string path = required_string(r.params, "path");
  if (path.front() != '/') {
    throw util::Error(util::Errc::invalid_params, "invalid params: path must be absolute");
  }
  std::set<std::string> ids;
  for (auto& id : required_string_array(r.params, "lease_ids")) {
    if (!s.leases.find(id)) {
      throw util::Error(util::Errc::lease_ended, "lease " + id + " is not live", "secrets env --force");
    }
    ids.insert(std::move(id));
  }
  s.files[path] = ids;
  s.mark_dirty();
  s.audit({{"action", "env_file_registered"},
           {"details", path + " (" + std::to_string(ids.size()) + " leases)"}},
          &r.peer);
  return {{"success", true}, {"path", path}, {"lease_ids", ids}};
}

} // namespace

void add_lease_methods(MethodTable& table)
{
  table.emplace("secrets.registerFile", Method{register_file, "env_file_registered"});
  table.emplace("secrets.lease", Method{acquire, "lease_acquire"});
  table.emplace("secrets.revoke", Method{revoke, "lease_revoke"});
  table.emplace("secrets.leases", Method{list_leases, nullptr});
  table.emplace("secrets.watch", Method{watch, nullptr});
}

} // namespace server
