// `secrets passphrase set|change|remove` (identity.age, on disk, no daemon
// needed) and `secrets unlock` / `secrets lock` (the daemon's lock), issue 19
// and DESIGN.md section 11. The passphrase comes from
// cmd/passphrase_input (fd, terminal, pinentry), never argv or environment.

#include "cmd/passphrase.hpp"
#include "cmd/passphrase_input.hpp"
#include "store/identity.hpp"
#include "util/duration.hpp"
#include "util/error.hpp"
#include "util/paths.hpp"

#include <string.h> // explicit_bzero

namespace cmd {

namespace {

using store::age::SecretBuffer;

struct PassphraseOptions
{
  int fd = -1; // -1: not given (the options only take non-negative numbers)
  int new_fd = -1;
  std::string idle;
  std::string max;
};

std::optional<int> fd_of(int fd)
{
  return fd >= 0 ? std::optional<int>(fd) : std::nullopt;
}

const std::vector<Action> k_after_change = {
  {"secrets status", "a running daemon is unaffected: the keys did not change"},
  {"secrets unlock", "a locked daemon unlocks with the identity's current passphrase"},
};

Outcome set(const PassphraseOptions& o)
{
  const auto paths = util::default_paths();
  if (store::identity_is_protected(paths)) {
    throw util::Error(util::Errc::already_exists, paths.identity + " is already protected by a passphrase",
                      "secrets passphrase change");
  }
  const SecretBuffer text = store::read_identity_text(paths, std::nullopt);
  store::parse_identities(text, paths.identity); // refuse to protect a file that holds no key
  const SecretBuffer next = read_passphrase(fd_of(o.new_fd), "new passphrase for identity.age", true);
  store::write_identity(paths, text, next.view());
  return {success_envelope("secrets passphrase set",
                           {{"message", "identity.age is now protected by a passphrase; its keys did not change, so a "
                                        "running daemon is unaffected"},
                            {"identity", paths.identity},
                            {"protected", true}},
                           k_after_change)};
}

void require_protected(const util::Paths& paths)
{
  if (!store::identity_is_protected(paths)) {
    throw util::Error(util::Errc::invalid_params, paths.identity + " is not protected by a passphrase",
                      "secrets passphrase set");
  }
}

Outcome change(const PassphraseOptions& o)
{
  const auto paths = util::default_paths();
  require_protected(paths);
  const SecretBuffer current = read_passphrase(fd_of(o.fd), "current passphrase of identity.age", false);
  // A wrong passphrase throws here (unauthorized), before anything is written.
  const SecretBuffer text = store::read_identity_text(paths, current.view());
  const SecretBuffer next = read_passphrase(fd_of(o.new_fd), "new passphrase for identity.age", true);
  store::write_identity(paths, text, next.view());
  return {success_envelope("secrets passphrase change",
                           {{"message", "the passphrase of identity.age changed; its keys did not, so a running "
                                        "daemon is unaffected"},
                            {"identity", paths.identity},
                            {"protected", true}},
                           k_after_change)};
}

Outcome remove(const PassphraseOptions& o)
{
  const auto paths = util::default_paths();
  require_protected(paths);
  const SecretBuffer current = read_passphrase(fd_of(o.fd), "current passphrase of identity.age", false);
  const SecretBuffer text = store::read_identity_text(paths, current.view());
  store::write_identity(paths, text, std::nullopt);
  return {success_envelope("secrets passphrase remove",
                           {{"message", "identity.age is no longer protected: anything that can read the home can "
                                        "decrypt the store; its keys did not change, so a running daemon is unaffected"},
                            {"identity", paths.identity},
                            {"protected", false}},
                           {{"secrets passphrase set", "protect identity.age again"}})};
}

void check_duration(const std::string& flag, const std::string& value)
{
  if (!value.empty() && !util::parse_duration(value)) {
    throw util::Error(util::Errc::invalid_params, "invalid " + flag + " \"" + value + "\": expected a duration such as 30m or 8h",
                      "secrets unlock " + flag + " 30m");
  }
}

Outcome unlock(const PassphraseOptions& o)
{
  check_duration("--idle", o.idle);
  check_duration("--max", o.max);
  const SecretBuffer pass = read_passphrase(fd_of(o.fd), "passphrase to unlock the store", false);
  json params = json::object();
  params["passphrase"] = "";
  {
    // Assigned into a reserved string: no temporary copy is left behind.
    auto& s = params["passphrase"].get_ref<std::string&>();
    s.reserve(pass.size());
    s.assign(pass.view());
  }
  if (!o.idle.empty()) {
    params["idle"] = o.idle;
  }
  if (!o.max.empty()) {
    params["max"] = o.max;
  }
  const auto wipe = [&params] {
    auto& s = params["passphrase"].get_ref<std::string&>();
    explicit_bzero(s.data(), s.size());
  };
  json result;
  try {
    result = call("secrets.unlock", params);
  } catch (...) {
    wipe();
    throw;
  }
  wipe();
  return {success_envelope("secrets unlock", result,
                           {{"secrets status", "see the lock's timers"}, {"secrets lock", "lock the store now"}})};
}

Outcome lock()
{
  const json result = call("secrets.lock");
  return {success_envelope("secrets lock", result,
                           {{"secrets unlock", "unlock it again (asks for the passphrase)"},
                            {"secrets status", "see the locked state"}})};
}

} // namespace

void add_passphrase_commands(CLI::App& app, CommandAction& action)
{
  static PassphraseOptions o;
  auto* pp = app.add_subcommand("passphrase", "protect identity.age with a passphrase, change it or remove it");
  pp->require_subcommand(1);

  const auto current_fd = [](CLI::App* cmd) {
    cmd->add_option("--passphrase-fd", o.fd, "read the current passphrase from this descriptor")
      ->check(CLI::NonNegativeNumber);
  };
  const auto new_fd = [](CLI::App* cmd) {
    cmd->add_option("--new-passphrase-fd", o.new_fd, "read the new passphrase from this descriptor")
      ->check(CLI::NonNegativeNumber);
  };

  auto* set_cmd = pp->add_subcommand("set", "protect a plain identity.age with a new passphrase");
  new_fd(set_cmd);
  set_cmd->callback([&action] { action = [] { return set(o); }; });

  auto* change_cmd = pp->add_subcommand("change", "change identity.age's passphrase (its keys stay the same)");
  current_fd(change_cmd);
  new_fd(change_cmd);
  change_cmd->callback([&action] { action = [] { return change(o); }; });

  auto* remove_cmd = pp->add_subcommand("remove", "store identity.age in the clear again");
  current_fd(remove_cmd);
  remove_cmd->callback([&action] { action = [] { return remove(o); }; });

  auto* unlock_cmd = app.add_subcommand("unlock", "send the passphrase to the daemon, which then holds the key");
  unlock_cmd->add_option("--idle", o.idle, "lock again after this long without a value handed out (at most config's)");
  unlock_cmd->add_option("--max", o.max, "lock again this long after the unlock at the latest (at most config's)");
  current_fd(unlock_cmd);
  unlock_cmd->callback([&action] { action = [] { return unlock(o); }; });

  auto* lock_cmd = app.add_subcommand("lock", "lock the daemon now: it forgets the key and every decrypted value");
  lock_cmd->callback([&action] { action = [] { return lock(); }; });
}

} // namespace cmd
