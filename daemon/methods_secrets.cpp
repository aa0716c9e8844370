// secrets.add, secrets.list, secrets.delete, secrets.get, secrets.versions, secrets.rollback
#include "daemon/state.hpp"
#include "proxy/spec.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

namespace server {

namespace {

json secret_info_json(const store::SecretInfo& info, size_t active_leases)
{
  json j = {{"name", info.name},
            {"created_at", util::format_rfc3339_nano(info.created_at)},
            {"updated_at", util::format_rfc3339_nano(info.updated_at)},
            {"last_rotated", info.last_rotated ? util::format_rfc3339_nano(*info.last_rotated) : "0001-01-01T00:00:00Z"},
            {"active_leases", active_leases}};
  if (!info.rotate_via.empty()) {
    j["rotate_via"] = info.rotate_via;
  }
  j["proxy_only"] = info.proxy.has_value();
  if (info.proxy) {
    const auto url = proxy::parse_base_url(info.proxy->base_url);
    j["proxy"] = {{"base_url", info.proxy->base_url},
                  {"host", url ? url->host : ""},
                  {"allow_methods", info.proxy->allow_methods},
                  {"allow_paths", info.proxy->allow_paths},
                  {"inject", info.proxy->inject}};
  }
  return j;
}

// A value the proxy puts into a header must be one line: a line break would
// let the secret smuggle a second header or request upstream.
void check_proxy_value(const std::string& name, std::string_view value, const store::ProxySpec& spec)
{
  const auto injection = proxy::parse_injection(spec.inject);
  const bool in_header = injection && injection->kind != proxy::Injection::Kind::body
                         && injection->kind != proxy::Injection::Kind::query;
  if (in_header && value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    throw util::Error(util::Errc::invalid_params,
                      "secret " + name + " goes into a header (inject " + spec.inject
                        + ") and its value holds a line break or NUL",
                      "printf '%s' \"$VALUE\" | secrets add " + name + " --force --proxy-only ...");
  }
}

json add(State& s, const Request& r)
{
  const std::string name = required_string(r.params, "name");
  const auto value_it = r.params.find("value");
  if (value_it == r.params.end() || !value_it->is_string()) {
    throw util::Error(util::Errc::invalid_params, "invalid params: field value must be a string");
  }
  if (value_it->get_ref<const std::string&>().empty()) {
    throw util::Error(util::Errc::invalid_params, "invalid params: the value is empty",
                      "printf '%s' \"$VALUE\" | secrets add " + name);
  }
  std::optional<std::string> rotate_via;
  if (r.params.contains("rotate_via") && !r.params["rotate_via"].is_null()) {
    rotate_via = optional_string(r.params, "rotate_via");
  }
  const bool force = optional_bool(r.params, "force");
  std::optional<store::ProxySpec> proxy;
  if (optional_bool(r.params, "proxy_only")) {
    proxy = proxy::make_spec(optional_string(r.params, "base_url"), optional_string_array(r.params, "allow_methods"),
                             optional_string_array(r.params, "allow_paths"), optional_string(r.params, "inject"));
    check_proxy_value(name, value_it->get_ref<const std::string&>(), *proxy);
  } else {
    for (const char* field : {"base_url", "allow_methods", "allow_paths", "inject"}) {
      if (r.params.contains(field)) {
        throw util::Error(util::Errc::invalid_params,
                          std::string("invalid params: ") + field + " applies only with proxy_only",
                          "secrets add " + name + " --proxy-only --base-url https://...");
      }
    }
    if (const auto* existing = s.store->find(name); existing && existing->info.proxy) {
      // Replacing a proxy-only secret's value keeps it proxy-only (store.hpp).
      check_proxy_value(name, value_it->get_ref<const std::string&>(), *existing->info.proxy);
    }
  }
  if (s.wiped) {
    s.check_not_tripped(); // a wiped store takes no new secrets: its identity is gone
  }
  const bool existed = s.store->find(name) != nullptr;
  const auto& info =
    s.store->add(name, store::age::SecretBuffer(value_it->get_ref<const std::string&>()), rotate_via, force, proxy);
  json line = {{"action", "secret_add"},
               {"secret_name", name},
               {"details", existed ? "replaced" : "created"},
               {"rotate_via_set", !info.rotate_via.empty()},
               {"proxy_only", info.proxy.has_value()}};
  if (!info.rotate_via.empty()) {
    // A hook is code: whoever set it, the log says what it is. It runs only
    // once the user allows it in hooks.json.
    line["rotate_via"] = info.rotate_via;
  }
  s.audit(std::move(line), &r.peer);
  return {{"success", true},
          {"message", (existed ? "secret replaced: " : "secret added: ") + name},
          {"name", name},
          {"created_at", util::format_rfc3339_nano(info.created_at)},
          {"replaced", existed}};
}

json list(State& s, const Request&)
{
  json secrets = json::array();
  for (const auto& info : s.store->list()) {
    secrets.push_back(secret_info_json(info, s.leases.count_for(info.name)));
  }
  return {{"secrets", std::move(secrets)}};
}

json remove(State& s, const Request& r)
{
  const std::string name = required_string(r.params, "name");
  if (!s.store->find(name)) {
    throw util::Error(util::Errc::secret_not_found, "secret " + name + " not found", "secrets list");
  }
  // Leases end first: no holder keeps a lease on a secret that is gone.
  auto ended = s.leases.revoke_secret(name, lease::EndReason::secret_deleted);
  s.leases_ended(ended, &r.peer);
  s.store->remove(name);
  s.last_leased.erase(name);
  s.audit({{"action", "secret_delete"},
           {"secret_name", name},
           {"details", "revoked " + std::to_string(ended.size()) + " leases"}},
          &r.peer);
  return {{"success", true},
          {"message", "secret deleted: " + name},
          {"name", name},
          {"leases_revoked", ended.size()}};
}

json get(State& s, const Request& r)
{
  s.audit({{"action", "denied"},
           {"secret_name", optional_string(r.params, "name")},
           {"details", "secrets.get: there is no direct read"},
           {"success", false}},
          &r.peer);
  throw util::Error(util::Errc::unauthorized, "direct reads are not allowed; take a time-bounded lease instead",
                    "secrets lease NAME");
}

// The values a secret had before, newest first: numbers and dates, never a value.
json versions(State& s, const Request& r)
{
  const std::string name = required_string(r.params, "name");
  const auto* secret = s.store->find(name);
  if (!secret) {
    throw util::Error(util::Errc::secret_not_found, "secret " + name + " not found", "secrets list");
  }
  json list = json::array();
  for (size_t i = 0; i < secret->versions.size(); ++i) {
    list.push_back({{"version", i + 1}, {"replaced_at", util::format_rfc3339_nano(secret->versions[i].created_at)}});
  }
  json current = {{"updated_at", util::format_rfc3339_nano(secret->info.updated_at)}};
  if (secret->info.last_rotated) {
    current["last_rotated"] = util::format_rfc3339_nano(*secret->info.last_rotated);
  }
  return {{"name", name},
          {"current", std::move(current)},
          {"versions", std::move(list)},
          {"count", secret->versions.size()},
          {"max_versions", store::k_max_versions}};
}

// Like every store change it ends no lease; the store's generation moves on,
// so the proxy's cached grants take the restored value.
json rollback(State& s, const Request& r)
{
  const std::string name = required_string(r.params, "name");
  const int64_t to = optional_int(r.params, "to", 1);
  if (to < 1) {
    throw util::Error(util::Errc::invalid_params, "invalid params: field to must be a version number, 1 or more",
                      "secrets versions " + name);
  }
  if (s.wiped) {
    s.check_not_tripped(); // the store is gone, versions and all
  }
  const auto* secret = s.store->find(name);
  if (secret && secret->info.proxy && static_cast<size_t>(to) <= secret->versions.size()) {
    // An older value may predate the proxy spec; the header rule holds for it too.
    check_proxy_value(name, secret->versions[static_cast<size_t>(to) - 1].value.view(), *secret->info.proxy);
  }
  const auto replaced_at = s.store->rollback(name, static_cast<size_t>(to));
  const auto& info = s.store->find(name)->info;
  s.audit({{"action", "secret_rollback"},
           {"secret_name", name},
           {"details", "restored version " + std::to_string(to) + " (replaced at " + util::format_rfc3339_ms(replaced_at)
                         + "); the value it replaced is now version 1"},
           {"version", to},
           {"proxy_only", info.proxy.has_value()}},
          &r.peer);
  return {{"success", true},
          {"message", "secret " + name + " rolled back to version " + std::to_string(to)},
          {"name", name},
          {"version", to},
          {"updated_at", util::format_rfc3339_nano(info.updated_at)}};
}

} // namespace

void add_secret_methods(MethodTable& table)
{
  table.emplace("secrets.add", Method{add, "secret_add"});
  table.emplace("secrets.list", Method{list, nullptr});
  table.emplace("secrets.delete", Method{remove, "secret_delete"});
  table.emplace("secrets.get", Method{get, nullptr});
  table.emplace("secrets.versions", Method{versions, nullptr});
  table.emplace("secrets.rollback", Method{rollback, "secret_rollback"});
}

} // namespace server
