// secrets.lease, secrets.revoke, secrets.leases, secrets.watch, and the env files of `secrets env`
#include "audit/chain.hpp"
#include "daemon/session.hpp"
#include "daemon/params.hpp"
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

struct LeaseParams
{
  std::string secret_name;
  std::string client_id;
  std::string ttl; // a Go duration; empty: the default
  // bind_pid (and the start time the client saw, bind_start): the lease ends
  // when that process exits. 0: not bound.
  int bind_pid = 0;
  uint64_t bind_start = 0;

  static LeaseParams parse(const json& p)
  {
    LeaseParams out{required_string(p, "secret_name"), optional_string(p, "client_id"), optional_string(p, "ttl")};
    const int64_t pid = optional_int(p, "bind_pid");
    const int64_t start = optional_int(p, "bind_start");
    if (pid != 0 && (pid < 0 || pid > std::numeric_limits<pid_t>::max() || start < 0)) {
      throw util::Error(util::Errc::invalid_params, "invalid params: bind_pid must be a process id");
    }
    out.bind_pid = static_cast<int>(pid);
    out.bind_start = pid != 0 ? static_cast<uint64_t>(start) : 0;
    return out;
  }
};

// The pidfd of a bound lease's holder, taken before the lease, so a holder
// that is already gone (or a pid reused since the client looked) gets no
// lease. Sets `start` when the client did not give it.
util::UniqueFd holder_pidfd(int pid, uint64_t& start)
{
  if (pid == 0) {
    return {};
  }
  const auto actual = util::process_start_time(pid);
  start = start != 0 ? start : actual.value_or(0);
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

json acquire(State& s, const Request& r, const LeaseParams& p)
{
  const std::string& name = p.secret_name;
  const std::string& client_id = p.client_id;
  const auto ttl = lease::resolve_ttl(p.ttl, s.settings.default_lease_ttl, s.settings.max_lease_ttl);
  const auto* secret = s.store().find(name);
  if (!secret) {
    if (!store::is_valid_name(name)) {
      throw store::unknown_secret(name);
    }
    throw util::Error(util::Errc::not_found, "secret " + name + " not found",
                      "secrets add " + name + "  # or: secrets list");
  }
  // A proxy-only secret's lease carries a placeholder in place of the value
  // (DESIGN.md section 10); only its hash is kept.
  std::string placeholder;
  std::string placeholder_sha256;
  if (secret->info.proxy) {
    if (!s.proxy_server()) {
      throw util::Error(util::Errc::io,
                        "secret " + name + " is proxy-only and the proxy is not running"
                          + (s.proxy_error().empty() ? std::string(" (proxy.listen is off)") : ": " + s.proxy_error()),
                        "set proxy.listen in config.json (default 127.0.0.1:7700), then restart secrets serve");
    }
    placeholder = State::new_placeholder();
    placeholder_sha256 = audit::sha256_hex(placeholder);
  }
  const int bind_pid = p.bind_pid;
  uint64_t bind_start = p.bind_start;
  auto pidfd = holder_pidfd(bind_pid, bind_start);
  const auto& l = s.leases().acquire(name, client_id, ttl, bind_pid, bind_start, placeholder_sha256);
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
  s.remember_leased(name, l.created_at);
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
    out["proxy_url"] = "http://" + s.proxy_server()->address() + "/" + name;
  }
  if (auto warnings = s.proxy_warnings(); !warnings.empty()) {
    // Said on every lease, so that a proxy that never started is not missed.
    out["warnings"] = std::move(warnings);
    out["proxy_error"] = s.proxy_error();
  }
  return out;
}

struct RenewParams
{
  std::string lease_id;
  std::string ttl; // empty: the lease's own

  static RenewParams parse(const json& p) { return {required_string(p, "lease_id"), optional_string(p, "ttl")}; }
};

// As Vault: the new expiry is now + ttl (the lease's own TTL by default), never
// past max_lease_ttl from its creation. Refused while the killswitch is
// tripped, like a new lease: it extends access (the method table says so).
json renew(State& s, const Request& r, const RenewParams& p)
{
  const std::string& id = p.lease_id;
  const auto* current = s.leases().find(id);
  const auto& requested = p.ttl;
  const auto ttl = requested.empty() && current
                     ? current->ttl
                     : lease::resolve_ttl(requested, s.settings.default_lease_ttl, s.settings.max_lease_ttl);
  const auto& l = s.leases().renew(id, ttl, s.settings.max_lease_ttl);
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

// The params of the methods that name one lease.
struct LeaseIdParams
{
  std::string lease_id;

  static LeaseIdParams parse(const json& p) { return {required_string(p, "lease_id")}; }
};

json revoke(State& s, const Request& r, const LeaseIdParams& p)
{
  const std::string& id = p.lease_id;
  const auto ended = s.leases().revoke(id, lease::EndReason::revoked);
  s.leases_ended({ended}, &r.peer);
  return {{"success", true}, {"message", "lease revoked: " + id}, {"lease_id", id}};
}

json list_leases(State& s, const Request&, const NoParams&)
{
  json out = json::array();
  for (const auto& l : s.leases().snapshot()) {
    out.push_back(lease_json(l));
  }
  return {{"leases", std::move(out)}};
}

struct WatchParams
{
  std::vector<std::string> lease_ids;

  static WatchParams parse(const json& p) { return {required_string_array(p, "lease_ids")}; }
};

json watch(State& s, const Request& r, const WatchParams& p)
{
  const auto& ids = p.lease_ids;
  r.session->set_watching();
  json watching = json::array();
  for (const auto& lease_id : ids) {
    if (s.leases().find(lease_id)) {
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

std::string absolute_path(const json& p)
{
  std::string path = required_string(p, "path");
  if (path.front() != '/') {
    throw util::Error(util::Errc::invalid_params, "invalid params: path must be absolute");
  }
  return path;
}

struct RegisterFileParams
{
  std::string path;
  std::vector<std::string> lease_ids;

  static RegisterFileParams parse(const json& p)
  {
    std::string path = absolute_path(p);
    return {std::move(path), required_string_array(p, "lease_ids")};
  }
};

// secrets env: the daemon deletes `path` when all of `lease_ids` have ended.
json register_file(State& s, const Request& r, const RegisterFileParams& p)
{
  const std::string& path = p.path;
  std::set<std::string> ids;
  for (const auto& id : p.lease_ids) {
    if (!s.leases().find(id)) {
      throw util::Error(lease::errc::ended, "lease " + id + " is not live", "secrets env --force");
    }
    ids.insert(id);
  }
  s.register_env_file(path, ids);
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
struct RemoveEnvFileParams
{
  std::string path;
  bool dry_run = false;

  static RemoveEnvFileParams parse(const json& p)
  {
    std::string path = required_string(p, "path");
    const bool dry_run = optional_bool(p, "dry_run");
    if (path.front() != '/') {
      throw util::Error(util::Errc::invalid_params, "invalid params: path must be absolute");
    }
    return {std::move(path), dry_run};
  }
};

json remove_env_file(State& s, const Request& r, const RemoveEnvFileParams& p)
{
  const std::string& path = p.path;
  const bool dry_run = p.dry_run;
  const auto ids = rpc::env_file_leases(path);
  if (!ids) {
    throw util::Error(util::Errc::invalid_params, path + " is not a file written by secrets env; left alone",
                      "rm " + path + "  # if you are sure");
  }
  json live = json::array();
  for (const auto& id : *ids) {
    if (s.leases().find(id)) {
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
    s.forget_env_file(path);
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
struct ReportLeakParams
{
  std::string lease_id;
  std::string stream;
  std::string action;

  static ReportLeakParams parse(const json& p)
  {
    ReportLeakParams out{required_string(p, "lease_id"), optional_string(p, "stream", "output"),
                         optional_string(p, "action", "warn")};
    if (out.action != "warn" && out.action != "revoke" && out.action != "rotate") {
      throw util::Error(util::Errc::invalid_params, "invalid params: action must be warn, revoke or rotate");
    }
    if (out.stream != "stdout" && out.stream != "stderr" && out.stream != "output") {
      throw util::Error(util::Errc::invalid_params, "invalid params: stream must be stdout or stderr");
    }
    return out;
  }
};

json report_leak(State& s, const Request& r, const ReportLeakParams& p)
{
  const std::string& id = p.lease_id;
  const std::string& stream = p.stream;
  const std::string& action = p.action;
  const auto* l = s.leases().find(id);
  if (!l) {
    s.leases().revoke(id); // throws lease_ended or lease_not_found, naming the id
  }
  const std::string name = l->secret_name;
  s.audit({{"action", "leak_detected"},
           {"secret_name", name},
           {"client_id", l->client_id},
           {"lease_id", id},
           {"details", "leased value seen on the child's " + stream + "; action: " + action}},
          &r.peer);
  if (action != "warn") {
    s.leases_ended({s.leases().revoke(id, lease::EndReason::revoked)}, &r.peer);
  }
  if (action == "rotate") {
    s.rotate(name, &r.peer, [](const RotationOutcome&) {}); // audited as secret_rotate
  }
  return {{"success", true}, {"lease_id", id}, {"secret_name", name}, {"action", action}};
}

} // namespace

void add_lease_methods(MethodTable& table)
{
  table.emplace("secrets.lease", Method{.handler = with_params(acquire),
                                        .audit_action = "lease_acquire",
                                        .reads_values = true,
                                        .allowed_while_tripped = false,
                                        .allowed_while_locked = false});
  // Extends access as a new lease does.
  table.emplace("secrets.renew", Method{.handler = with_params(renew),
                                        .audit_action = "lease_renew",
                                        .allowed_while_tripped = false,
                                        .allowed_while_locked = false});
  table.emplace("secrets.revoke", Method{.handler = with_params(revoke),
                                         .audit_action = "lease_revoke",
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = true});
  // Its rotate action runs the secret's hook (State::rotate).
  table.emplace("secrets.reportLeak", Method{.handler = with_params(report_leak),
                                             .audit_action = "leak_detected",
                                             .reads_values = true,
                                             .mutates_store = true,
                                             .allowed_while_tripped = true,
                                             .allowed_while_locked = false});
  table.emplace("secrets.leases", Method{.handler = with_params(list_leases),
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = false});
  table.emplace("secrets.watch", Method{.handler = with_params(watch),
                                        .allowed_while_tripped = true,
                                        .allowed_while_locked = false});
  table.emplace("secrets.registerFile", Method{.handler = with_params(register_file),
                                               .audit_action = "env_file_registered",
                                               .allowed_while_tripped = true,
                                               .allowed_while_locked = false});
  table.emplace("secrets.removeEnvFile", Method{.handler = with_params(remove_env_file),
                                                .audit_action = "env_file_removed",
                                                .allowed_while_tripped = true,
                                                .allowed_while_locked = false});
}

} // namespace server
