// `secrets passphrase set|change|remove` (identity.age, on disk, no daemon
// needed), issue 19 and DESIGN.md section 11. The passphrase comes from
// cmd/passphrase_input (fd, terminal, pinentry), never argv or environment.

#include "cmd/passphrase.hpp"
#include "cmd/passphrase_input.hpp"
#include "store/identity.hpp"
#include "util/error.hpp"
#include "util/paths.hpp"

namespace cmd {

namespace {

using store::age::SecretBuffer;

struct PassphraseOptions
{
  int fd = -1; // -1: not given (the options only take non-negative numbers)
  int new_fd = -1;
};

std::optional<int> fd_of(int fd)
{
  return fd >= 0 ? std::optional<int>(fd) : std::nullopt;
}

const std::vector<Action> k_after_change = {
  {"secrets status", "a running daemon is unaffected: the keys did not change"},
  {"secrets serve", "a daemon started later asks for the identity's current passphrase"},
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
}

} // namespace cmd
