#include "store/identity.hpp"

#include "util/error.hpp"
#include "util/file.hpp"

namespace store {

namespace {

using util::Errc;
using util::Error;

struct WipeString
{
  std::string& s;
  ~WipeString() { util::wipe(s); }
};

std::string read_required(const util::Paths& paths)
{
  auto text = util::read_file_if_exists(paths.identity);
  if (!text) {
    throw Error(Errc::decryption, "no identity at " + paths.identity, "secrets init");
  }
  return std::move(*text);
}

} // namespace

bool identity_is_protected(const util::Paths& paths)
{
  std::string text = read_required(paths);
  WipeString wipe{text};
  return age::is_encrypted_with_passphrase(text);
}

age::SecretBuffer read_identity_text(const util::Paths& paths, std::optional<std::string_view> passphrase)
{
  std::string text = read_required(paths);
  WipeString wipe{text};
  if (!age::is_encrypted_with_passphrase(text)) {
    return age::SecretBuffer(text);
  }
  if (!passphrase) {
    throw Error(Errc::invalid_params, paths.identity + " is passphrase-protected and no passphrase was given",
                "secrets unlock");
  }
  try {
    return age::decrypt_with_passphrase(text, *passphrase);
  } catch (const age::Error& e) {
    if (e.kind() == age::ErrorKind::no_match) {
      throw Error(Errc::unauthorized, "wrong passphrase", "try again; the passphrase is the one given to secrets "
                                                          "init --passphrase or secrets passphrase set");
    }
    throw Error(Errc::decryption, std::string("failed to read identity ") + paths.identity + ": " + e.what(),
                "restore " + paths.identity + " from a backup");
  }
}

std::vector<age::X25519Identity> parse_identities(const age::SecretBuffer& text, const std::string& path)
{
  std::vector<age::X25519Identity> identities;
  try {
    identities = age::parse_identity_file(text.view());
  } catch (const age::Error& e) {
    throw Error(Errc::decryption, "failed to read identity " + path + ": " + e.what(),
                "restore " + path + " from a backup");
  }
  if (identities.empty()) {
    throw Error(Errc::decryption, "no identity in " + path, "restore " + path + " from a backup");
  }
  return identities;
}

void write_identity(const util::Paths& paths, const age::SecretBuffer& text, std::optional<std::string_view> passphrase,
                    int log_n)
{
  // Refuse to write a file that would not give the store's key back.
  parse_identities(text, paths.identity);
  std::string content;
  WipeString wipe{content};
  if (passphrase) {
    content = age::encrypt_with_passphrase(*passphrase, text.view(), log_n);
    const auto check = age::decrypt_with_passphrase(content, *passphrase);
    if (check.view() != text.view()) {
      throw Error(Errc::internal, "the new " + paths.identity + " did not decrypt to the identity; nothing changed");
    }
  } else {
    content.assign(text.view());
  }
  util::write_file_atomic(paths.identity, content);
}

} // namespace store
