// secrets.lease, secrets.revoke, secrets.leases, secrets.watch, and the env files of `secrets env`
#include "audit/chain.hpp"
#include "daemon/session.hpp"
#include "daemon/state.hpp"
#include "rpc/env_file.hpp"
#include "util/error.hpp"
#include "util/process.hpp"
#include "util/time.hpp"

#include <limits>

namespace server {

namespace {

json lease_json(const lease::Lease& l)
{
  json j = {{"lease_id", l.id},
            {"secret_name", l.secret_name},
            {"client_id", l.client_id},
            {"created_at", util::format_rfc3339_nano(l.created_at)},
            {"expires_at", util::format_rfc3339_nano(l.expires_at)}};
  if (l.bind_pid != 0) {
    j["bind_pid"] = l.bind_pid;
    j["bind_start"] = l.bind_start;
  }
  return j;
}

// The latest a lease may live to, renewals included.
std::string max_expires_at(const State& s, const lease::Lease& l)
{
  return util::format_rfc3339_nano(l.created_at + s.settings.max_lease_ttl);
}

// bind_pid (and the start time the client saw, bind_start): the lease ends when
// that process exits. The pidfd is taken before the lease, so a holder that is
// already gone (or a pid reused since the client looked) gets no lease.
util::UniqueFd holder_pidfd(const json& params, int& pid, uint64_t& start)
{
  const int64_t want_pid = optional_int(params, "bind_pid");
  const int64_t want_start = optional_int(params, "bind_start");
  if (want_pid == 0) {
    return {};
  }
  if (want_pid < 0 || want_pid > std::numeric_limits<pid_t>::max() || want_start < 0) {
    throw util::Error(util::Errc::invalid_params, "invalid params: bind_pid must be a process id");
  }
  pid = static_cast<int>(want_pid);
  const auto actual = util::process_start_time(pid);
  start = want_start != 0 ? static_cast<uint64_t>(want_start) : actual.value_or(0);
  util::UniqueFd pidfd;
  if (actual) {
    pidfd = util::open_process(pid, start);
  }
  if (!pidfd) {
    throw util::Error(util::Errc::invalid_params,
                      "process " + std::to_string(pid) + " to bind the lease to is not running",
                      "secrets lease NAME --bind self  # or a running process's pid");
  }
  return pidfd;
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
  // A proxy-only secret's lease carries a placeholder in place of the value
  // (DESIGN.md section 10); only its hash is kept.
  std::string placeholder;
  std::string placeholder_sha256;
  if (secret->info.proxy) {
    if (!s.proxy_server) {
      throw util::Error(util::Errc::io,
                        "secret " + name + " is proxy-only and the proxy is not running"
                          + (s.proxy_error.empty() ? std::string(" (proxy.listen is off)") : ": " + s.proxy_error),
                        "set proxy.listen in config.json (default 127.0.0.1:7700), then restart secrets serve");
    }
    placeholder = State::new_placeholder();
    placeholder_sha256 = audit::sha256_hex(placeholder);
  }
  int bind_pid = 0;
  uint64_t bind_start = 0;
  auto pidfd = holder_pidfd(r.params, bind_pid, bind_start);
  const auto& l = s.leases.acquire(name, client_id, ttl, bind_pid, bind_start, placeholder_sha256);
  // The acquire line is the write-ahead log record: the reply (with the
  // value) leaves only once it is durable.
  json line = {{"action", "lease_acquire"},
               {"secret_name", name},
               {"client_id", client_id},
               {"lease_id", l.id},
               {"details", "TTL: " + util::format_duration(ttl)},
               {"created_at", util::format_rfc3339_nano(l.created_at)},
               {"expires_at", util::format_rfc3339_nano(l.expires_at)}};
  if (bind_pid != 0) {
    line["bind_pid"] = bind_pid;
    line["bind_start"] = bind_start;
    s.watch_holder(l, std::move(pidfd));
  }
  if (!placeholder.empty()) {
    line["placeholder_sha256"] = placeholder_sha256;
    s.index_placeholder(l, r.peer.uid);
  }
  s.audit(std::move(line), &r.peer);
  s.last_leased[name] = l.created_at;
  s.mark_dirty();
  s.rearm_prune_timer();
  json out = {{"lease_id", l.id},
              {"value", placeholder.empty() ? std::string(secret->value.view()) : placeholder},
              {"expires_at", util::format_rfc3339_nano(l.expires_at)},
              {"secret_name", name},
              {"client_id", client_id},
              {"ttl", util::format_duration(ttl)},
              {"max_expires_at", max_expires_at(s, l)}};
  if (bind_pid != 0) {
    out["bind_pid"] = bind_pid;
  }
  if (!placeholder.empty()) {
    out["proxy"] = true;
    out["proxy_url"] = "http://" + s.proxy_server->address() + "/" + name;
  }
  if (auto warnings = s.proxy_warnings(); !warnings.empty()) {
    // Said on every lease, so that a proxy that never started is not missed.
    out["warnings"] = std::move(warnings);
    out["proxy_error"] = s.proxy_error;
  }
  return out;
}

// As Vault: the new expiry is now + ttl (the lease's own TTL by default), never
// past max_lease_ttl from its creation.
json renew(State& s, const Request& r)
{
  const std::string id = required_string(r.params, "lease_id");
  const auto* current = s.leases.find(id);
  const auto requested = optional_string(r.params, "ttl");
  const auto ttl = requested.empty() && current
                     ? current->ttl
                     : lease::resolve_ttl(requested, s.settings.default_lease_ttl, s.settings.max_lease_ttl);
  const auto& l = s.leases.renew(id, ttl, s.settings.max_lease_ttl);
  s.audit({{"action", "lease_renew"},
           {"secret_name", l.secret_name},
           {"client_id", l.client_id},
           {"lease_id", l.id},
           {"details", "TTL: " + util::format_duration(ttl)},
           {"expires_at", util::format_rfc3339_nano(l.expires_at)}},
          &r.peer);
  s.mark_dirty();
  s.rearm_prune_timer();
  return {{"success", true},
          {"lease_id", l.id},
          {"secret_name", l.secret_name},
          {"expires_at", util::format_rfc3339_nano(l.expires_at)},
          {"ttl", util::format_duration(ttl)},
          {"max_expires_at", max_expires_at(s, l)}};
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
           {"details", path + " (" + std::to_string(ids.size()) + " leases)"},
           {"path", path},
           {"lease_ids", ids}},
          &r.peer);
  return {{"success", true}, {"path", path}, {"lease_ids", ids}};
}

// secrets cleanup: deletes an env file once every lease it names has ended.
// The daemon decides, so that the deletion is checked against the live table
// and audited like the ones it makes itself.
json remove_env_file(State& s, const Request& r)
{
  const std::string path = required_string(r.params, "path");
  const bool dry_run = optional_bool(r.params, "dry_run");
  if (path.front() != '/') {
    throw util::Error(util::Errc::invalid_params, "invalid params: path must be absolute");
  }
  const auto ids = rpc::env_file_leases(path);
  if (!ids) {
    throw util::Error(util::Errc::invalid_params, path + " is not a file written by secrets env; left alone",
                      "rm " + path + "  # if you are sure");
  }
  json live = json::array();
  for (const auto& id : *ids) {
    if (s.leases.find(id)) {
      live.push_back(id);
    }
  }
  json out = {{"path", path}, {"removed", false}, {"live_leases", live}};
  if (ids->empty()) {
    out["reason"] = "names no lease";
  } else if (!live.empty()) {
    out["reason"] = "has live leases";
  } else if (dry_run) {
    out["reason"] = "dry run";
  } else {
    const std::string details = rpc::delete_env_file(path);
    if (s.files.erase(path) != 0) {
      s.mark_dirty();
    }
    out["removed"] = details.starts_with("deleted");
    s.audit({{"action", "env_file_removed"}, {"details", path + ": " + details + " (secrets cleanup)"}, {"path", path},
             {"success", out["removed"]}},
            &r.peer);
    if (!out["removed"]) {
      out["reason"] = details;
    }
  }
  return out;
}

// secrets exec saw a leased value in its child's output. The value never comes
// here: only which lease and which stream. `action`: warn (audit only),
// revoke (the lease ends, so exec stops the child), rotate (revoke, then run
// the secret's hook so the leaked value stops working).
json report_leak(State& s, const Request& r)
{
  const std::string id = required_string(r.params, "lease_id");
  const std::string stream = optional_string(r.params, "stream", "output");
  const std::string action = optional_string(r.params, "action", "warn");
  if (action != "warn" && action != "revoke" && action != "rotate") {
    throw util::Error(util::Errc::invalid_params, "invalid params: action must be warn, revoke or rotate");
  }
  if (stream != "stdout" && stream != "stderr" && stream != "output") {
    throw util::Error(util::Errc::invalid_params, "invalid params: stream must be stdout or stderr");
  }
  const auto* l = s.leases.find(id);
  if (!l) {
    s.leases.revoke(id); // throws lease_ended or lease_not_found, naming the id
  }
  const std::string name = l->secret_name;
  s.audit({{"action", "leak_detected"},
           {"secret_name", name},
           {"client_id", l->client_id},
           {"lease_id", id},
           {"details", "leased value seen on the child's " + stream + "; action: " + action}},
          &r.peer);
  if (action != "warn") {
    s.leases_ended({s.leases.revoke(id, lease::EndReason::revoked)}, &r.peer);
  }
  if (action == "rotate") {
    s.rotate(name, &r.peer, [](const RotationOutcome&) {}); // audited as secret_rotate
  }
  return {{"success", true}, {"lease_id", id}, {"secret_name", name}, {"action", action}};
}

} // namespace

void add_lease_methods(MethodTable& table)
{
  table.emplace("secrets.registerFile", Method{register_file, "env_file_registered"});
  table.emplace("secrets.removeEnvFile", Method{remove_env_file, "env_file_removed"});
  table.emplace("secrets.lease", Method{acquire, "lease_acquire"});
  table.emplace("secrets.revoke", Method{revoke, "lease_revoke"});
  table.emplace("secrets.renew", Method{renew, "lease_renew"});
  table.emplace("secrets.reportLeak", Method{report_leak, "leak_detected"});
  table.emplace("secrets.leases", Method{list_leases, nullptr});
  table.emplace("secrets.watch", Method{watch, nullptr});
}

} // namespace server
