#include "store/store.hpp"

#include "store/age/primitives.hpp"
#include "store/identity.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <nlohmann/json.hpp>

#include <string.h> // explicit_bzero
#include <sys/stat.h>

namespace store {

namespace {

using nlohmann::json;
using util::Errc;
using util::Error;

// Go writes a never-set time.Time as its zero value.
constexpr const char* k_zero_time = "0001-01-01T00:00:00Z";

// nlohmann copies values into std::strings; wipe them before they are freed.
void wipe(std::string& s)
{
  explicit_bzero(s.data(), s.size());
}

void wipe_strings(json& j)
{
  if (j.is_string()) {
    wipe(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& item : j) {
      wipe_strings(item);
    }
  }
}

struct WipeOnExit
{
  std::string& s;
  ~WipeOnExit() { wipe(s); }
};

util::TimePoint parse_time(const json& j, const std::string& field, const std::string& name)
{
  const auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    throw Error(Errc::decryption, "secret " + name + ": missing or bad " + field);
  }
  const auto t = util::parse_rfc3339(it->get<std::string>());
  if (!t) {
    throw Error(Errc::decryption, "secret " + name + ": bad time in " + field);
  }
  return *t;
}

// A malformed "proxy" member stops the load: reading it as absent would make a
// proxy-only secret leasable raw.
ProxySpec proxy_from_json(const json& j, const std::string& name, const std::string& path, const std::string& fix)
{
  auto bad = [&] { return Error(Errc::decryption, path + ": secret " + name + " has a malformed \"proxy\" member", fix); };
  auto strings = [&](const char* field) {
    std::vector<std::string> out;
    const auto it = j.find(field);
    if (it == j.end() || !it->is_array()) {
      throw bad();
    }
    for (const auto& v : *it) {
      if (!v.is_string()) {
        throw bad();
      }
      out.push_back(v.get<std::string>());
    }
    return out;
  };
  if (!j.is_object() || !j.contains("base_url") || !j["base_url"].is_string() || !j.contains("inject")
      || !j["inject"].is_string()) {
    throw bad();
  }
  ProxySpec spec;
  spec.base_url = j["base_url"].get<std::string>();
  spec.inject = j["inject"].get<std::string>();
  spec.allow_methods = strings("allow_methods");
  spec.allow_paths = strings("allow_paths");
  if (spec.base_url.empty() || spec.allow_paths.empty()) {
    throw bad();
  }
  return spec;
}

// A malformed "versions" member stops the load too: the next write would drop
// the values it holds.
std::vector<Version> versions_from_json(const json& j, const std::string& name, const std::string& path,
                                        const std::string& fix)
{
  std::vector<Version> out;
  if (j.is_null()) {
    return out;
  }
  auto bad = [&] {
    return Error(Errc::decryption, path + ": secret " + name + " has a malformed \"versions\" member", fix);
  };
  if (!j.is_array()) {
    throw bad();
  }
  for (const auto& item : j) {
    if (!item.is_object() || !item.contains("value") || !item["value"].is_string() || !item.contains("created_at")
        || !item["created_at"].is_string()) {
      throw bad();
    }
    const auto t = util::parse_rfc3339(item["created_at"].get<std::string>());
    if (!t) {
      throw bad();
    }
    out.push_back(Version{age::SecretBuffer(item["value"].get_ref<const std::string&>()), *t});
  }
  return out;
}

Secret copy_of(const Secret& s)
{
  Secret out;
  out.info = s.info;
  out.value = age::SecretBuffer(s.value.view());
  out.versions.reserve(s.versions.size() + 1);
  for (const auto& v : s.versions) {
    out.versions.push_back(Version{age::SecretBuffer(v.value.view()), v.created_at});
  }
  return out;
}

// Before `next` replaces the secret's value: the old value becomes version 1,
// and the oldest beyond k_max_versions is dropped (and wiped). Putting back
// the same bytes replaces nothing, so it keeps no copy.
void keep_replaced(Secret& s, const age::SecretBuffer& next, util::TimePoint now)
{
  if (age::primitives::equal_constant_time(age::primitives::bytes_of(s.value.view()),
                                           age::primitives::bytes_of(next.view()))) {
    return;
  }
  s.versions.insert(s.versions.begin(), Version{std::move(s.value), now});
  if (s.versions.size() > k_max_versions) {
    s.versions.erase(s.versions.begin() + k_max_versions, s.versions.end());
  }
}

// A malformed audit key stops the load: making a new one would turn every
// keyed line into one that cannot be checked.
AuditKey audit_key_from_json(const json& j, const std::string& path, const std::string& fix)
{
  const auto bad = [&] { return Error(Errc::decryption, path + ": the \"audit_key\" member is malformed", fix); };
  if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("first_seq")
      || !j["first_seq"].is_number_unsigned()) {
    throw bad();
  }
  const std::string& hex = j["key"].get_ref<const std::string&>();
  AuditKey key;
  key.key = age::SecretBuffer(32);
  if (!age::primitives::hex_decode(hex, {key.key.data(), key.key.size()})) {
    throw bad();
  }
  key.first_seq = j["first_seq"].get<uint64_t>();
  if (const auto it = j.find("earlier_key_lost"); it != j.end() && it->is_boolean()) {
    key.earlier_key_lost = it->get<bool>();
  }
  if (const auto it = j.find("created_at"); it != j.end() && it->is_string()) {
    key.created_at = util::parse_rfc3339(it->get<std::string>()).value_or(util::TimePoint{});
  }
  return key;
}

} // namespace

bool is_valid_name(std::string_view name)
{
  if (name.empty() || name.size() > 128 || name[0] == '-' || name[0] == '.') {
    return false;
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
                    || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string Store::init(const util::Paths& paths, const util::Clock& clock,
                        std::optional<std::string_view> passphrase)
{
  util::ensure_private_dir(paths.home);
  if (auto problem = util::permission_problem(paths.home, true)) {
    throw Error(Errc::io, *problem, "chmod 700 " + paths.home);
  }
  if (util::read_file_if_exists(paths.identity)) {
    throw Error(Errc::already_exists, "store already initialized: " + paths.identity + " exists",
                "secrets serve &");
  }
  if (util::read_file_if_exists(paths.secrets)) {
    // A secrets file without its identity cannot be decrypted; never overwrite it.
    throw Error(Errc::already_exists,
                paths.secrets + " exists but " + paths.identity + " does not; refusing to overwrite it",
                "restore " + paths.identity + " from a backup, or move " + paths.secrets + " away");
  }
  const auto identity = age::X25519Identity::generate();
  const auto recipient = identity.recipient();
  // The secrets file first: if we crash in between, init can be run again.
  Store empty(paths, clock, {recipient});
  empty.persist();
  const auto file = age::format_identity_file(identity, clock.now());
  write_identity(paths, file, passphrase);
  return recipient.encode();
}

std::unique_ptr<Store> Store::open(const util::Paths& paths, const util::Clock& clock)
{
  util::check_home(paths);
  if (identity_is_protected(paths)) {
    throw Error(errc::locked, paths.identity + " is passphrase-protected: the store is locked", "secrets unlock");
  }
  return open(paths, clock, parse_identities(read_identity_text(paths, std::nullopt), paths.identity));
}

std::unique_ptr<Store> Store::open(const util::Paths& paths, const util::Clock& clock,
                                   const std::vector<age::X25519Identity>& identities)
{
  util::check_home(paths);
  std::vector<age::X25519Recipient> recipients;
  recipients.push_back(identities.front().recipient());
  std::unique_ptr<Store> store(new Store(paths, clock, std::move(recipients)));

  const auto ciphertext = util::read_file_if_exists(paths.secrets);
  if (!ciphertext) {
    return store;
  }
  const std::string fix = "restore " + paths.secrets + " from a backup; the daemon will not replace it";
  age::SecretBuffer plaintext;
  try {
    plaintext = age::decrypt(*ciphertext, identities);
  } catch (const age::Error& e) {
    throw Error(Errc::decryption, "failed to decrypt " + paths.secrets + ": " + e.what(), fix);
  }
  json doc;
  try {
    doc = json::parse(plaintext.view());
  } catch (const json::exception&) {
    throw Error(Errc::decryption, paths.secrets + " decrypts but is not valid JSON", fix);
  }
  struct WipeJson
  {
    json& j;
    ~WipeJson() { wipe_strings(j); }
  } wipe_doc{doc};
  if (!doc.is_object() || !doc.contains("secrets")) {
    throw Error(Errc::decryption, paths.secrets + " has no \"secrets\" object", fix);
  }
  if (const auto it = doc.find("audit_key"); it != doc.end() && !it->is_null()) {
    store->m_audit_key = audit_key_from_json(*it, paths.secrets, fix);
  }
  const auto& secrets = doc["secrets"];
  if (secrets.is_null()) {
    return store; // Go writes `"secrets": null` for a store that never held one
  }
  if (!secrets.is_object()) {
    throw Error(Errc::decryption, paths.secrets + ": \"secrets\" is not an object", fix);
  }
  for (const auto& [name, entry] : secrets.items()) {
    if (!entry.is_object() || !entry.contains("value") || !entry["value"].is_string()) {
      throw Error(Errc::decryption, paths.secrets + ": secret " + name + " has no string value", fix);
    }
    Secret s;
    s.info.name = name;
    s.info.created_at = parse_time(entry, "created_at", name);
    s.info.updated_at = parse_time(entry, "updated_at", name);
    if (const auto it = entry.find("rotate_via"); it != entry.end() && it->is_string()) {
      s.info.rotate_via = it->get<std::string>();
    }
    if (const auto it = entry.find("last_rotated"); it != entry.end() && it->is_string()) {
      const auto t = util::parse_rfc3339(it->get<std::string>());
      if (t && *t > util::TimePoint{}) {
        s.info.last_rotated = t;
      }
    }
    if (const auto it = entry.find("proxy"); it != entry.end() && !it->is_null()) {
      s.info.proxy = proxy_from_json(*it, name, paths.secrets, fix);
    }
    if (const auto it = entry.find("versions"); it != entry.end()) {
      s.versions = versions_from_json(*it, name, paths.secrets, fix);
    }
    s.value = age::SecretBuffer(entry["value"].get_ref<const std::string&>());
    store->m_secrets.emplace(name, std::move(s));
  }
  return store;
}

Store::Store(util::Paths paths, const util::Clock& clock, std::vector<age::X25519Recipient> recipients)
  : m_paths(std::move(paths)), m_clock(clock), m_recipients(std::move(recipients))
{
}

template <typename Change>
const SecretInfo& Store::update(std::map<std::string, Secret>::iterator it, Change change)
{
  // A copy is changed and swapped in, so a failed write puts back exactly
  // what was there (its versions included); the copy's buffers are wiped
  // when it goes.
  Secret next = copy_of(it->second);
  change(next);
  ++m_generation;
  std::swap(it->second, next);
  try {
    persist();
  } catch (...) {
    std::swap(it->second, next);
    throw;
  }
  return it->second.info;
}

const Secret* Store::find(const std::string& name) const
{
  const auto it = m_secrets.find(name);
  return it == m_secrets.end() ? nullptr : &it->second;
}

std::vector<SecretInfo> Store::list() const
{
  std::vector<SecretInfo> out;
  out.reserve(m_secrets.size());
  for (const auto& [name, secret] : m_secrets) {
    out.push_back(secret.info);
  }
  return out;
}

util::Error unknown_secret(const std::string& name)
{
  if (!is_valid_name(name)) {
    return Error(Errc::invalid_params,
                 "invalid secret name " + json(name).dump(-1, ' ', false, json::error_handler_t::replace)
                   + ": names use letters, digits, '_', '-' and '.', at most 128",
                 "secrets list");
  }
  return Error(Errc::not_found, "secret " + name + " not found", "secrets list");
}

const SecretInfo& Store::add(const std::string& name, age::SecretBuffer value, std::optional<std::string> rotate_via,
                             bool force, std::optional<ProxySpec> proxy)
{
  if (!is_valid_name(name)) {
    throw Error(Errc::invalid_params,
                // Quoted as JSON: a NUL or control byte must not cut or garble the message.
                "invalid secret name " + json(name).dump(-1, ' ', false, json::error_handler_t::replace)
                  + ": use letters, digits, '_', '-' and '.', at most 128",
                "secrets add my_api_key");
  }
  const auto now = m_clock.now();
  auto it = m_secrets.find(name);
  if (it != m_secrets.end() && !force) {
    throw Error(Errc::already_exists, "secret " + name + " already exists", "secrets add " + name + " --force");
  }
  if (it != m_secrets.end()) {
    return update(it, [&](Secret& s) {
      s.info.updated_at = now;
      if (rotate_via) {
        s.info.rotate_via = *rotate_via;
      }
      if (proxy) {
        s.info.proxy = std::move(proxy);
      }
      keep_replaced(s, value, now);
      s.value = std::move(value);
    });
  }
  ++m_generation;
  Secret fresh;
  fresh.info.name = name;
  fresh.info.created_at = now;
  fresh.info.updated_at = now;
  fresh.info.rotate_via = rotate_via.value_or("");
  fresh.info.proxy = std::move(proxy);
  fresh.value = std::move(value);
  it = m_secrets.emplace(name, std::move(fresh)).first;
  try {
    persist();
  } catch (...) {
    m_secrets.erase(it);
    throw;
  }
  return it->second.info;
}

const SecretInfo& Store::set_rotate_via(const std::string& name, const std::string& rotate_via)
{
  auto it = m_secrets.find(name);
  if (it == m_secrets.end()) {
    throw unknown_secret(name);
  }
  return update(it, [&](Secret& s) { s.info.rotate_via = rotate_via; });
}

void Store::remove(const std::string& name)
{
  auto node = m_secrets.extract(name);
  if (node.empty()) {
    throw unknown_secret(name);
  }
  ++m_generation;
  try {
    persist();
  } catch (...) {
    m_secrets.insert(std::move(node));
    throw;
  }
}

void Store::mark_rotated(const std::string& name, std::optional<age::SecretBuffer> new_value)
{
  const auto it = m_secrets.find(name);
  if (it == m_secrets.end()) {
    throw unknown_secret(name);
  }
  const auto now = m_clock.now();
  update(it, [&](Secret& s) {
    s.info.last_rotated = now;
    s.info.updated_at = now;
    if (new_value) {
      keep_replaced(s, *new_value, now);
      s.value = std::move(*new_value);
    }
  });
}

util::TimePoint Store::rollback(const std::string& name, size_t number)
{
  const auto it = m_secrets.find(name);
  if (it == m_secrets.end()) {
    throw unknown_secret(name);
  }
  const size_t kept = it->second.versions.size();
  if (kept == 0) {
    throw Error(Errc::invalid_params, "secret " + name + " has no earlier version to roll back to",
                "secrets versions " + name);
  }
  if (number < 1 || number > kept) {
    throw Error(Errc::invalid_params,
                "secret " + name + " has no version " + std::to_string(number) + ": it keeps "
                  + std::to_string(kept) + (kept == 1 ? " (version 1)" : " (versions 1 to " + std::to_string(kept) + ")"),
                "secrets versions " + name);
  }
  const auto restored_from = it->second.versions[number - 1].created_at;
  const auto now = m_clock.now();
  update(it, [&](Secret& s) {
    auto picked = s.versions.begin() + static_cast<std::ptrdiff_t>(number - 1);
    age::SecretBuffer value = std::move(picked->value);
    s.versions.erase(picked);
    // The same number of versions as before: nothing is dropped.
    s.versions.insert(s.versions.begin(), Version{std::move(s.value), now});
    s.value = std::move(value);
    s.info.updated_at = now;
  });
  return restored_from;
}

void Store::set_audit_key(AuditKey key)
{
  std::optional<AuditKey> previous = std::move(m_audit_key);
  m_audit_key = std::move(key);
  try {
    persist();
  } catch (...) {
    m_audit_key = std::move(previous);
    throw;
  }
}

void Store::persist() const
{
  json doc = {{"version", 1}, {"secrets", json::object()}};
  struct WipeJson
  {
    json& j;
    ~WipeJson() { wipe_strings(j); }
  } wipe_doc{doc};
  for (const auto& [name, s] : m_secrets) {
    json entry = {{"name", s.info.name},
                  {"created_at", util::format_rfc3339_nano(s.info.created_at)},
                  {"updated_at", util::format_rfc3339_nano(s.info.updated_at)},
                  {"last_rotated", s.info.last_rotated ? util::format_rfc3339_nano(*s.info.last_rotated) : k_zero_time},
                  {"value", std::string(s.value.view())}};
    if (!s.info.rotate_via.empty()) {
      entry["rotate_via"] = s.info.rotate_via;
    }
    if (s.info.proxy) {
      entry["proxy"] = {{"base_url", s.info.proxy->base_url},
                        {"allow_methods", s.info.proxy->allow_methods},
                        {"allow_paths", s.info.proxy->allow_paths},
                        {"inject", s.info.proxy->inject}};
    }
    if (!s.versions.empty()) {
      json versions = json::array();
      for (const auto& v : s.versions) {
        versions.push_back({{"value", std::string(v.value.view())},
                            {"created_at", util::format_rfc3339_nano(v.created_at)}});
      }
      entry["versions"] = std::move(versions);
    }
    doc["secrets"][name] = std::move(entry);
  }
  if (m_audit_key) {
    doc["audit_key"] = {{"key", age::primitives::hex_encode({m_audit_key->key.data(), m_audit_key->key.size()})},
                        {"first_seq", m_audit_key->first_seq},
                        {"earlier_key_lost", m_audit_key->earlier_key_lost},
                        {"created_at", util::format_rfc3339_nano(m_audit_key->created_at)}};
  }
  std::string plaintext = doc.dump(2);
  WipeOnExit wipe_plaintext{plaintext};
  std::string ciphertext;
  try {
    ciphertext = age::encrypt(m_recipients, plaintext);
  } catch (const age::Error& e) {
    throw Error(Errc::encryption, std::string("failed to encrypt the store: ") + e.what());
  }
  util::write_file_atomic(m_paths.secrets, ciphertext);
}

} // namespace store
