// secrets.add, secrets.list, secrets.delete, secrets.get, secrets.versions, secrets.rollback, secrets.setHook
#include "daemon/params.hpp"
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

struct AddParams
{
  std::string name;
  store::age::SecretBuffer value; // wiped when freed
  std::optional<std::string> rotate_via; // absent or null: keep the secret's
  bool force = false;
  std::optional<store::ProxySpec> proxy; // proxy_only

  static AddParams parse(const json& p)
  {
    AddParams out;
    out.name = required_string(p, "name");
    const auto value_it = p.find("value");
    if (value_it == p.end() || !value_it->is_string()) {
      throw util::Error(util::Errc::invalid_params, "invalid params: field value must be a string");
    }
    const auto& value = value_it->get_ref<const std::string&>();
    if (value.empty()) {
      throw util::Error(util::Errc::invalid_params, "invalid params: the value is empty",
                        "printf '%s' \"$VALUE\" | secrets add " + out.name);
    }
    if (p.contains("rotate_via") && !p["rotate_via"].is_null()) {
      out.rotate_via = optional_string(p, "rotate_via");
    }
    out.force = optional_bool(p, "force");
    if (optional_bool(p, "proxy_only")) {
      out.proxy = proxy::make_spec(optional_string(p, "base_url"), optional_string_array(p, "allow_methods"),
                                   optional_string_array(p, "allow_paths"), optional_string(p, "inject"));
      check_proxy_value(out.name, value, *out.proxy);
    } else {
      for (const char* field : {"base_url", "allow_methods", "allow_paths", "inject"}) {
        if (p.contains(field)) {
          throw util::Error(util::Errc::invalid_params,
                            std::string("invalid params: ") + field + " applies only with proxy_only",
                            "secrets add " + out.name + " --proxy-only --base-url https://...");
        }
      }
    }
    out.value = store::age::SecretBuffer(value);
    return out;
  }
};

json add(State& s, const Request& r, const AddParams& p)
{
  const std::string& name = p.name;
  if (const auto* existing = s.store().find(name); !p.proxy && existing && existing->info.proxy) {
    // Replacing a proxy-only secret's value keeps it proxy-only (store.hpp).
    check_proxy_value(name, p.value.view(), *existing->info.proxy);
  }
  const bool existed = s.store().find(name) != nullptr;
  const auto& info = s.store().add(name, store::age::SecretBuffer(p.value.view()), p.rotate_via, p.force, p.proxy);
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

json list(State& s, const Request&, const NoParams&)
{
  json secrets = json::array();
  for (const auto& info : s.store().list()) {
    secrets.push_back(secret_info_json(info, s.leases().count_for(info.name)));
  }
  return {{"secrets", std::move(secrets)}};
}

// The params of the methods that name one secret.
struct NameParams
{
  std::string name;

  static NameParams parse(const json& p) { return {required_string(p, "name")}; }
};

json remove(State& s, const Request& r, const NameParams& p)
{
  const std::string& name = p.name;
  if (!s.store().find(name)) {
    throw store::unknown_secret(name);
  }
  // Leases end first: no holder keeps a lease on a secret that is gone.
  auto ended = s.leases().revoke_secret(name, lease::EndReason::secret_deleted);
  s.leases_ended(ended, &r.peer);
  s.store().remove(name);
  s.forget_leased(name);
  s.audit({{"action", "secret_delete"},
           {"secret_name", name},
           {"details", "revoked " + std::to_string(ended.size()) + " leases"}},
          &r.peer);
  return {{"success", true},
          {"message", "secret deleted: " + name},
          {"name", name},
          {"leases_revoked", ended.size()}};
}

struct GetParams
{
  std::string name; // optional: only for the audit line

  static GetParams parse(const json& p) { return {optional_string(p, "name")}; }
};

json get(State& s, const Request& r, const GetParams& p)
{
  s.audit({{"action", "denied"},
           {"secret_name", p.name},
           {"details", "secrets.get: there is no direct read"},
           {"success", false}},
          &r.peer);
  throw util::Error(util::Errc::unauthorized, "direct reads are not allowed; take a time-bounded lease instead",
                    "secrets lease NAME");
}

// The values a secret had before, newest first: numbers and dates, never a value.
json versions(State& s, const Request&, const NameParams& p)
{
  const std::string& name = p.name;
  const auto* secret = s.store().find(name);
  if (!secret) {
    throw store::unknown_secret(name);
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
struct RollbackParams
{
  std::string name;
  int64_t to = 1; // the version to restore (1: the newest kept)

  static RollbackParams parse(const json& p)
  {
    RollbackParams out{required_string(p, "name"), optional_int(p, "to", 1)};
    if (out.to < 1) {
      throw util::Error(util::Errc::invalid_params, "invalid params: field to must be a version number, 1 or more",
                        "secrets versions " + out.name);
    }
    return out;
  }
};

json rollback(State& s, const Request& r, const RollbackParams& p)
{
  const std::string& name = p.name;
  const int64_t to = p.to;
  const auto* secret = s.store().find(name);
  if (secret && secret->info.proxy && static_cast<size_t>(to) <= secret->versions.size()) {
    // An older value may predate the proxy spec; the header rule holds for it too.
    check_proxy_value(name, secret->versions[static_cast<size_t>(to) - 1].value.view(), *secret->info.proxy);
  }
  const auto replaced_at = s.store().rollback(name, static_cast<size_t>(to));
  const auto& info = s.store().find(name)->info;
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

// secrets set-hook: records (or, with "", clears) a secret's rotation hook
// without touching its value. Like add's rotate_via, it only records: the hook
// runs once the user allows it in hooks.json (config/hooks.hpp).
struct SetHookParams
{
  std::string name;
  std::string rotate_via;

  static SetHookParams parse(const json& p)
  {
    const auto it = p.find("rotate_via");
    if (it == p.end() || !it->is_string()) {
      throw util::Error(util::Errc::invalid_params, "invalid params: field rotate_via must be a string",
                        "secrets set-hook NAME 'COMMAND'");
    }
    return {required_string(p, "name"), it->get<std::string>()};
  }
};

json set_hook(State& s, const Request& r, const SetHookParams& p)
{
  if (!s.store().find(p.name)) {
    throw store::unknown_secret(p.name);
  }
  s.store().set_rotate_via(p.name, p.rotate_via);
  // A hook is code: the log says what it is (or that it was cleared).
  s.audit({{"action", "secret_set_hook"}, {"secret_name", p.name}, {"rotate_via", p.rotate_via}}, &r.peer);
  return {{"success", true},
          {"message", p.rotate_via.empty() ? "rotation hook cleared: " + p.name : "rotation hook recorded: " + p.name},
          {"name", p.name},
          {"rotate_via", p.rotate_via}};
}

} // namespace

void add_secret_methods(MethodTable& table)
{
  table.emplace("secrets.add", Method{.handler = with_params(add),
                                      .audit_action = "secret_add",
                                      .mutates_store = true,
                                      .allowed_while_tripped = true,
                                      .allowed_while_locked = false});
  table.emplace("secrets.list", Method{.handler = with_params(list),
                                       .allowed_while_tripped = true,
                                       .allowed_while_locked = false});
  table.emplace("secrets.delete", Method{.handler = with_params(remove),
                                         .audit_action = "secret_delete",
                                         .mutates_store = true,
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = false});
  // Always refused (and audited as denied) by its handler: there is no direct read.
  table.emplace("secrets.get", Method{.handler = with_params(get),
                                      .allowed_while_tripped = true,
                                      .allowed_while_locked = false});
  table.emplace("secrets.versions", Method{.handler = with_params(versions),
                                           .allowed_while_tripped = true,
                                           .allowed_while_locked = false});
  table.emplace("secrets.setHook", Method{.handler = with_params(set_hook),
                                          .audit_action = "secret_set_hook",
                                          .mutates_store = true,
                                          .allowed_while_tripped = true,
                                          .allowed_while_locked = false});
  table.emplace("secrets.rollback", Method{.handler = with_params(rollback),
                                           .audit_action = "secret_rollback",
                                           .mutates_store = true,
                                           .allowed_while_tripped = true,
                                           .allowed_while_locked = false});
}

} // namespace server
