#pragma once
// The secret store: secrets.age, an age file encrypted to identity.age's
// recipient, holding the Go agent-secrets plaintext schema
//   {"version":1,"secrets":{NAME:{"name","created_at","updated_at",
//                                 "rotate_via"?,"last_rotated","value",
//                                 "proxy"?,"versions"?}},"audit_key"?:{...}}
// so that a Go home directory works unchanged and `age -d -i identity.age
// secrets.age` shows it. "proxy" and "versions" are ours; the Go daemon
// ignores them when it reads the file, and drops them when it next writes it.
//
// Contract:
// - open() refuses (throws util::Error with a fix) on bad permissions, a
//   missing or unreadable identity, or a secrets file that does not decrypt or
//   parse. A store that does not load is never replaced by an empty one; only
//   an absent secrets.age means "no secrets yet".
// - Every mutation writes the whole file atomically before it returns; if the
//   write fails, memory is rolled back and the old file is untouched.
// - Values live in age::SecretBuffer (wiped on free); temporaries are wiped.
// - No change destroys a value: add --force, a rotation that changes the value
//   and a rollback keep the value they replace as version 1 of the secret's
//   `versions` (newest first, at most k_max_versions). remove and forget_all
//   drop the versions with the secret.
// - Not thread-safe: the daemon calls it from its io thread.

#include "store/age/age.hpp"
#include "util/error.hpp"
#include "util/clock.hpp"
#include "util/paths.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace store {

// A proxy-only secret (DESIGN.md section 10): the daemon's proxy injects it
// into requests to base_url and no client ever gets it back. Validated by
// proxy::make_spec before it reaches the store; stored as given. The Go
// version ignores the "proxy" member, so a Go binary would lease such a
// secret raw: do not switch back to it with proxy-only secrets in the store.
struct ProxySpec
{
  std::string base_url;                   // scheme://host[:port][/path], no trailing slash
  std::vector<std::string> allow_methods; // upper case; empty: any method
  std::vector<std::string> allow_paths;   // path prefixes, never empty
  std::string inject = "bearer";          // bearer | basic | header:NAME | query:NAME | body

  bool operator==(const ProxySpec&) const = default;
};

struct SecretInfo
{
  std::string name;
  util::TimePoint created_at;
  util::TimePoint updated_at;
  std::string rotate_via;
  std::optional<util::TimePoint> last_rotated;
  std::optional<ProxySpec> proxy; // set: proxy-only
};

// A value the secret had before. In the file: {"value","created_at"}.
struct Version
{
  age::SecretBuffer value;
  util::TimePoint created_at; // when it was replaced and kept
};

// How many replaced values each secret keeps.
inline constexpr size_t k_max_versions = 5;

struct Secret
{
  SecretInfo info;
  age::SecretBuffer value;
  std::vector<Version> versions; // newest first: versions[0] is version 1
};

// The audit chain's key (DESIGN.md section 6), a top-level member of the
// plaintext that the Go daemon ignores:
//   "audit_key":{"key":"<64 hex>","first_seq":N,"earlier_key_lost":bool,"created_at":"..."}
// first_seq is the seq of the first line keyed under it: lines before it are
// plain or Go lines, or (earlier_key_lost) lines keyed under a key that is
// gone. The store only keeps it: the daemon makes it (daemon/audit_chain.cpp).
// The Go daemon drops the member when it rewrites the file; ours then makes a
// new key on its next start.
struct AuditKey
{
  age::SecretBuffer key; // 32 bytes
  uint64_t first_seq = 1;
  bool earlier_key_lost = false;
  util::TimePoint created_at;
};

// Names are what a user would put in an env var or a file name.
bool is_valid_name(std::string_view name);

// The error for a secret that is not there: invalid_params when `name` could
// never be one (the message quotes it as JSON, so a control byte cannot
// garble it), else secret_not_found. Fixes never repeat an invalid name.
util::Error unknown_secret(const std::string& name);

class Store
{
public:
  // Creates the home directory (0700), identity.age and an empty secrets.age.
  // Refuses if identity.age already exists. Returns the public key.
  // With a passphrase, identity.age is protected by it (store/identity.hpp).
  static std::string init(const util::Paths& paths, const util::Clock& clock,
                          std::optional<std::string_view> passphrase = std::nullopt);

  // Reads identity.age in the clear; throws errc::locked (fix: secrets
  // unlock) if it is passphrase-protected.
  static std::unique_ptr<Store> open(const util::Paths& paths, const util::Clock& clock);
  // Opens with identities the caller already holds (unlocked with a passphrase).
  static std::unique_ptr<Store> open(const util::Paths& paths, const util::Clock& clock,
                                     const std::vector<age::X25519Identity>& identities);

  const Secret* find(const std::string& name) const;
  std::vector<SecretInfo> list() const;
  size_t size() const { return m_secrets.size(); }

  // Throws Errc::already_exists unless force; force keeps created_at. A
  // rotate_via or proxy left unset keeps the existing one: replacing the value
  // of a proxy-only secret never makes it leasable raw by accident.
  const SecretInfo& add(const std::string& name, age::SecretBuffer value, std::optional<std::string> rotate_via,
                        bool force, std::optional<ProxySpec> proxy = std::nullopt);
  // Records (or, with "", clears) the rotation hook of an existing secret;
  // the value, its versions and the dates stay. Throws Errc::not_found.
  const SecretInfo& set_rotate_via(const std::string& name, const std::string& rotate_via);
  // Throws Errc::not_found.
  void remove(const std::string& name);
  // After a rotation: a new value (or none, if unchanged) and last_rotated = now.
  void mark_rotated(const std::string& name, std::optional<age::SecretBuffer> new_value);
  // Makes version `number` (1 = the newest kept) the value again; the value
  // it replaces becomes version 1, so a rollback can itself be rolled back.
  // rotate_via and proxy are the secret's and stay as they are: a proxy-only
  // secret stays proxy-only whatever value it holds. Throws
  // Errc::not_found, or Errc::invalid_params for a number that is not
  // in [1, versions.size()]. Returns the restored version's created_at.
  util::TimePoint rollback(const std::string& name, size_t number);

  // After the killswitch wiped the files: drop (and wipe) every value in memory.
  void forget_all()
  {
    ++m_generation;
    m_secrets.clear();
    m_audit_key.reset();
  }

  // The audit chain's key; null when the store has none yet.
  const AuditKey* audit_key() const { return m_audit_key ? &*m_audit_key : nullptr; }
  // Replaces the audit key and writes the store; on a failed write, memory is
  // rolled back and the error thrown.
  void set_audit_key(AuditKey key);

  // Moves on with every add, remove, rotation and forget_all (also one that
  // fails). Safe to read from any thread: the proxy's cached grants compare it.
  uint64_t generation() const { return m_generation.load(); }

private:
  Store(util::Paths paths, const util::Clock& clock, std::vector<age::X25519Recipient> recipients);
  void persist() const;
  // Applies `change` to a copy of the secret, swaps it in and persists; if
  // the write fails, the secret is put back as it was.
  template <typename Change>
  const SecretInfo& update(std::map<std::string, Secret>::iterator it, Change change);

  util::Paths m_paths;
  const util::Clock& m_clock;
  std::vector<age::X25519Recipient> m_recipients;
  std::map<std::string, Secret> m_secrets;
  std::optional<AuditKey> m_audit_key;
  std::atomic<uint64_t> m_generation{0};
};

} // namespace store
