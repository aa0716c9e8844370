#pragma once
// age v1 (c2sp.org/age) for the store: X25519 and scrypt (passphrase)
// recipients, binary and ASCII-armored files. Post-quantum recipients are
// not supported (libsodium 1.0.18 has no ML-KEM).
//
// Contract: every failure to decrypt or to parse a key throws store::age::Error
// with the test kit's failure class; programming errors (no recipients, a work
// factor out of range) throw std::invalid_argument. Secrets (identity scalars,
// file keys, derived keys, plaintext handed back) live in SecretBuffers. All
// functions are safe to call from several threads at once.

#include "store/age/error.hpp"
#include "store/age/secret_buffer.hpp"
#include "util/clock.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace store::age {

// An "age1..." public key.
class X25519Recipient
{
public:
  // Throws Error(key); the message never echoes the input.
  static X25519Recipient parse(std::string_view age1_string);
  static X25519Recipient from_public_key(const std::array<uint8_t, 32>& public_key);
  std::string encode() const;
  const std::array<uint8_t, 32>& public_key() const { return m_public_key; }

  bool operator==(const X25519Recipient&) const = default;

private:
  explicit X25519Recipient(const std::array<uint8_t, 32>& public_key) : m_public_key(public_key) {}

  std::array<uint8_t, 32> m_public_key;
};

// An "AGE-SECRET-KEY-1..." secret key. Copying makes a second guarded buffer.
class X25519Identity
{
public:
  static X25519Identity generate();
  // Throws Error(key); the message never echoes the input.
  static X25519Identity parse(std::string_view age_secret_key_1);
  X25519Identity(const X25519Identity& other);
  X25519Identity& operator=(const X25519Identity& other);
  X25519Identity(X25519Identity&&) noexcept = default;
  X25519Identity& operator=(X25519Identity&&) noexcept = default;
  ~X25519Identity() = default;

  SecretBuffer encode() const; // uppercase, as age-keygen writes it
  X25519Recipient recipient() const { return m_recipient; }
  const SecretBuffer& secret_scalar() const { return m_secret; }

private:
  explicit X25519Identity(SecretBuffer secret);

  SecretBuffer m_secret;
  X25519Recipient m_recipient;
};

// An identity file as age-keygen writes it and age reads it: '#' comment lines
// and empty lines are ignored, one key per line, the last line may lack its
// newline, and a CR before a newline is dropped (as Go's bufio.Scanner does).
// Throws Error(key) naming the line number on bad content, or if there is no
// key at all; never echoes the key.
std::vector<X25519Identity> parse_identity_file(std::string_view text);
// "# created: 2006-01-02T15:04:05Z\n# public key: age1...\nAGE-SECRET-KEY-1...\n"
SecretBuffer format_identity_file(const X25519Identity& id, util::TimePoint created);

// Binary age files. encrypt throws std::invalid_argument for no recipients
// and Error(key) for a low-order recipient.
std::string encrypt(const std::vector<X25519Recipient>& recipients, std::string_view plaintext);
// log_n is the scrypt work factor, 1..22 (18 is age's default: ~256 MiB, ~1 s).
std::string encrypt_with_passphrase(std::string_view passphrase, std::string_view plaintext, int log_n = 18);
// PEM "AGE ENCRYPTED FILE", 64-column lines, LF, final newline.
std::string armor(std::string_view binary_age_file);
// Throws Error(armor). Whitespace around the block and CRLF are accepted.
std::string dearmor(std::string_view armored_age_file);

// Accept binary or armored input (armor is recognized by its BEGIN line after
// optional leading whitespace).
SecretBuffer decrypt(std::string_view file, const std::vector<X25519Identity>& identities);
SecretBuffer decrypt_with_passphrase(std::string_view file, std::string_view passphrase, int max_log_n = 22);

struct Keys
{
  std::vector<X25519Identity> identities;
  std::vector<std::string> passphrases;
  int max_log_n = 22; // scrypt work factors above this are a header failure
};

// The streaming core. Tries the identities, then the passphrases, in order
// (an scrypt stanza must be alone in the header); then checks the header MAC;
// then appends each authenticated payload chunk to `out` as it is released.
// On Error(payload), `out` holds the chunks released before the failure:
// genuine but incomplete, so never use them as the file's content.
void decrypt_to(std::string_view file, const Keys& keys, std::string& out);
// As decrypt_to, for input that is known to be binary (never dearmored).
void decrypt_binary_to(std::string_view file, const Keys& keys, std::string& out);

// True if the file (binary or armored) parses and its header holds a single
// scrypt stanza, i.e. it needs a passphrase rather than an identity.
bool is_encrypted_with_passphrase(std::string_view file);

} // namespace store::age
