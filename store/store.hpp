#pragma once
// The secret store: secrets.age, an age file encrypted to identity.age's
// recipient, holding the Go agent-secrets plaintext schema
//   {"version":1,"secrets":{NAME:{"name","created_at","updated_at",
//                                 "rotate_via"?,"last_rotated","value"}}}
// so that a Go home directory works unchanged and `age -d -i identity.age
// secrets.age` shows it.
//
// Contract:
// - open() refuses (throws util::Error with a fix) on bad permissions, a
//   missing or unreadable identity, or a secrets file that does not decrypt or
//   parse. A store that does not load is never replaced by an empty one; only
//   an absent secrets.age means "no secrets yet".
// - Every mutation writes the whole file atomically before it returns; if the
//   write fails, memory is rolled back and the old file is untouched.
// - Values live in age::SecretBuffer (wiped on free); temporaries are wiped.
// - Not thread-safe: the daemon calls it from its io thread.

#include "store/age/age.hpp"
#include "util/clock.hpp"
#include "util/paths.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace store {

struct SecretInfo
{
  std::string name;
  util::TimePoint created_at;
  util::TimePoint updated_at;
  std::string rotate_via;
  std::optional<util::TimePoint> last_rotated;
};

struct Secret
{
  SecretInfo info;
  age::SecretBuffer value;
};

// Names are what a user would put in an env var or a file name.
bool is_valid_name(std::string_view name);

class Store
{
public:
  // Creates the home directory (0700), identity.age and an empty secrets.age.
  // Refuses if identity.age already exists. Returns the public key.
  static std::string init(const util::Paths& paths, const util::Clock& clock);

  static std::unique_ptr<Store> open(const util::Paths& paths, const util::Clock& clock);

  const Secret* find(const std::string& name) const;
  std::vector<SecretInfo> list() const;
  size_t size() const { return m_secrets.size(); }

  // Throws Errc::already_exists unless force; force keeps created_at.
  const SecretInfo& add(const std::string& name, age::SecretBuffer value, std::optional<std::string> rotate_via,
                        bool force);
  // Throws Errc::secret_not_found.
  void remove(const std::string& name);
  // After a rotation: a new value (or none, if unchanged) and last_rotated = now.
  void mark_rotated(const std::string& name, std::optional<age::SecretBuffer> new_value);

  // After the killswitch wiped the files: drop (and wipe) every value in memory.
  void forget_all() { m_secrets.clear(); }

private:
  Store(util::Paths paths, const util::Clock& clock, std::vector<age::X25519Recipient> recipients);
  void persist() const;

  util::Paths m_paths;
  const util::Clock& m_clock;
  std::vector<age::X25519Recipient> m_recipients;
  std::map<std::string, Secret> m_secrets;
};

} // namespace store
