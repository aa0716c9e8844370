#pragma once
// identity.age, the key the store is encrypted to (DESIGN.md sections 2 and 11).
// It is either the age-keygen text in the clear, or that text inside an age
// file with one scrypt stanza (passphrase-protected), exactly what `age -p`
// writes and what `age -d -i identity.age` accepts after asking for the
// passphrase.
//
// Contract: nothing here prompts; the passphrase comes from the caller. The
// identity text and the passphrase only ever live in SecretBuffers or in
// strings wiped before they are freed. A wrong passphrase is
// Error(Errc::unauthorized, "wrong passphrase") and says nothing about how
// close it was. write_identity replaces the file atomically and only after
// decrypting what it is about to write, so a crash or a failure leaves the
// old file or the new one, each readable.

#include "store/age/age.hpp"
#include "util/error.hpp"
#include "util/paths.hpp"

#include <optional>
#include <string_view>
#include <vector>

namespace store::errc {

// -32012: the identity is passphrase-protected and not unlocked.
inline constexpr util::Errc locked = util::layer_errc(-32012); // "locked"

} // namespace store::errc

namespace store {

// The scrypt work factor `age -p` uses (about 1 s and 256 MiB).
inline constexpr int k_passphrase_log_n = 18;

// Whether identity.age is passphrase-protected. Throws Error(decryption, fix
// "secrets init") if it is missing.
bool identity_is_protected(const util::Paths& paths);

// The identity file's plaintext. A protected file needs `passphrase`
// (Error(Errc::invalid_params) without one); a plain file ignores it.
age::SecretBuffer read_identity_text(const util::Paths& paths, std::optional<std::string_view> passphrase);

// The keys in an identity text; throws Error(decryption) naming the file,
// never the key.
std::vector<age::X25519Identity> parse_identities(const age::SecretBuffer& text, const std::string& path);

// Replaces identity.age with `text`, protected by `passphrase` if given, else
// in the clear. The new content is decrypted (or parsed) again and compared
// before the rename.
void write_identity(const util::Paths& paths, const age::SecretBuffer& text, std::optional<std::string_view> passphrase,
                    int log_n = k_passphrase_log_n);

} // namespace store
