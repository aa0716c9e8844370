#include "store/age/age.hpp"

#include "store/age/bech32.hpp"
#include "store/age/format.hpp"
#include "store/age/primitives.hpp"
#include "store/age/stream.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <stdexcept>

namespace store::age {

namespace {

namespace prim = primitives;
using format::Header;
using format::Stanza;

// Domain separation: each derived key is bound to its one use by its label.
constexpr std::string_view k_x25519_label = "age-encryption.org/v1/X25519";
constexpr std::string_view k_scrypt_label = "age-encryption.org/v1/scrypt";
constexpr std::string_view k_header_label = "header";
constexpr std::string_view k_payload_label = "payload";

constexpr std::string_view k_x25519_type = "X25519";
constexpr std::string_view k_scrypt_type = "scrypt";
constexpr std::string_view k_recipient_hrp = "age";
constexpr std::string_view k_identity_hrp = "AGE-SECRET-KEY-";
constexpr std::string_view k_identity_hrp_lower = "age-secret-key-"; // what the checksum covers

constexpr size_t k_scrypt_salt_size = 16;
constexpr size_t k_wrapped_key_size = prim::k_file_key_size + prim::k_tag_size;

// Every wrap key (an HKDF output over a fresh ephemeral share, or scrypt over
// a fresh salt) encrypts exactly one message, the file key, so the AEAD nonce
// can be fixed at zero.
constexpr std::array<uint8_t, prim::k_aead_nonce_size> k_zero_nonce{};

[[noreturn]] void stanza_error(std::string_view type, const std::string& what)
{
  throw Error(ErrorKind::header, "invalid " + std::string(type) + " stanza: " + what);
}

std::string as_string(prim::Bytes a)
{
  return {reinterpret_cast<const char*>(a.data()), a.size()};
}

std::string concat(prim::Bytes a, prim::Bytes b)
{
  std::string out(reinterpret_cast<const char*>(a.data()), a.size());
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
  return out;
}

// Unwraps the file key from an X25519 stanza; nullopt if the stanza is of
// another type or was not made for this identity.
std::optional<SecretBuffer> unwrap_x25519(const X25519Identity& identity, const Stanza& stanza)
{
  if (stanza.type != k_x25519_type) {
    return std::nullopt;
  }
  if (stanza.args.size() != 1) {
    stanza_error(k_x25519_type, "wrong number of arguments");
  }
  const auto share = prim::base64_decode(stanza.args[0]);
  if (!share || share->size() != prim::k_point_size) {
    stanza_error(k_x25519_type, "ephemeral share is not 32 canonical base64 bytes");
  }
  // Checked before any decryption: different failure paths for different body
  // lengths would be a partitioning oracle.
  if (stanza.body.size() != k_wrapped_key_size) {
    stanza_error(k_x25519_type, "wrapped file key has the wrong length");
  }
  const auto shared = prim::x25519(prim::bytes_of(identity.secret_scalar().view()), prim::bytes_of(*share));
  if (!shared) {
    stanza_error(k_x25519_type, "ephemeral share is a low-order point (all-zero shared secret)");
  }
  // Binding both public keys into the salt ties the wrap key to this exact
  // sender share and recipient.
  const std::string salt = concat(prim::bytes_of(*share), identity.recipient().public_key());
  const SecretBuffer wrap_key = prim::hkdf_sha256(prim::bytes_of(shared->view()), prim::bytes_of(salt), k_x25519_label);
  SecretBuffer file_key(prim::k_file_key_size);
  if (!prim::aead_open(prim::bytes_of(wrap_key.view()), k_zero_nonce, prim::bytes_of(stanza.body),
                       {file_key.data(), file_key.size()})) {
    return std::nullopt;
  }
  return file_key;
}

// "%x31-39 *DIGIT": no sign, no leading zero, no other base. Values above
// `max_log_n` are refused here, before scrypt allocates 128 * 8 * 2^log_n bytes.
std::optional<int> parse_work_factor(std::string_view text, int max_log_n)
{
  if (text.empty() || text.size() > 2 || text[0] < '1' || text[0] > '9') {
    return std::nullopt;
  }
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  if (value > max_log_n) {
    return std::nullopt;
  }
  return value;
}

std::optional<SecretBuffer> unwrap_scrypt(std::string_view passphrase, const Stanza& stanza, int max_log_n)
{
  if (stanza.type != k_scrypt_type) {
    return std::nullopt;
  }
  if (stanza.args.size() != 2) {
    stanza_error(k_scrypt_type, "wrong number of arguments");
  }
  const auto salt = prim::base64_decode(stanza.args[0]);
  if (!salt || salt->size() != k_scrypt_salt_size) {
    stanza_error(k_scrypt_type, "salt is not 16 canonical base64 bytes");
  }
  const auto log_n = parse_work_factor(stanza.args[1], std::min(max_log_n, prim::k_max_scrypt_log_n));
  if (!log_n) {
    stanza_error(k_scrypt_type, "work factor is malformed or larger than allowed");
  }
  if (stanza.body.size() != k_wrapped_key_size) {
    stanza_error(k_scrypt_type, "wrapped file key has the wrong length");
  }
  const std::string labelled_salt = std::string(k_scrypt_label) + *salt;
  const SecretBuffer wrap_key = prim::scrypt(passphrase, prim::bytes_of(labelled_salt), *log_n);
  SecretBuffer file_key(prim::k_file_key_size);
  if (!prim::aead_open(prim::bytes_of(wrap_key.view()), k_zero_nonce, prim::bytes_of(stanza.body),
                       {file_key.data(), file_key.size()})) {
    return std::nullopt;
  }
  return file_key;
}

SecretBuffer unwrap_file_key(const Header& header,
                             std::span<const X25519Identity> identities,
                             std::span<const std::string_view> passphrases,
                             int max_log_n)
{
  // Passphrase encryption implies the sender knew the passphrase; another
  // stanza next to it would let anyone with a different key forge that file.
  if (header.stanzas.size() != 1) {
    for (const auto& stanza : header.stanzas) {
      if (stanza.type == k_scrypt_type) {
        throw Error(ErrorKind::header, "invalid header: an scrypt stanza must be the only stanza");
      }
    }
  }
  for (const auto& identity : identities) {
    for (const auto& stanza : header.stanzas) {
      if (auto file_key = unwrap_x25519(identity, stanza)) {
        return std::move(*file_key);
      }
    }
  }
  for (const auto passphrase : passphrases) {
    for (const auto& stanza : header.stanzas) {
      if (auto file_key = unwrap_scrypt(passphrase, stanza, max_log_n)) {
        return std::move(*file_key);
      }
    }
  }
  throw Error(ErrorKind::no_match, "no identity matched any of the file's recipients");
}

void decrypt_header(const Header& header,
                    std::span<const X25519Identity> identities,
                    std::span<const std::string_view> passphrases,
                    int max_log_n,
                    const stream::Release& release)
{
  const SecretBuffer file_key = unwrap_file_key(header, identities, passphrases, max_log_n);
  const auto ikm = prim::bytes_of(file_key.view());

  // The MAC authenticates the whole header (stanzas included) under the file
  // key, so nobody who cannot unwrap it can alter or add stanzas.
  const SecretBuffer mac_key = prim::hkdf_sha256(ikm, {}, k_header_label);
  std::array<uint8_t, prim::k_mac_size> mac{};
  prim::hmac_sha256(prim::bytes_of(mac_key.view()), prim::bytes_of(header.mac_input), mac);
  if (!prim::equal_constant_time(mac, prim::bytes_of(header.mac))) {
    throw Error(ErrorKind::hmac, "age header MAC does not match: the header was altered");
  }

  // A fresh nonce per file makes the payload key unique even if a file key
  // were ever reused.
  const SecretBuffer payload_key = prim::hkdf_sha256(ikm, prim::bytes_of(header.nonce), k_payload_label);
  stream::decrypt(prim::bytes_of(payload_key.view()), header.payload, release);
}

std::vector<std::string_view> views_of(const std::vector<std::string>& strings)
{
  return {strings.begin(), strings.end()};
}

std::string finish_file(std::vector<Stanza> stanzas, const SecretBuffer& file_key, std::string_view plaintext)
{
  const auto ikm = prim::bytes_of(file_key.view());
  std::string out = format::write_header_without_mac(stanzas);
  const SecretBuffer mac_key = prim::hkdf_sha256(ikm, {}, k_header_label);
  std::array<uint8_t, prim::k_mac_size> mac{};
  prim::hmac_sha256(prim::bytes_of(mac_key.view()), prim::bytes_of(out), mac);
  format::append_mac(out, mac);

  std::array<uint8_t, format::k_payload_nonce_size> nonce{};
  prim::random_bytes(nonce);
  out.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  const size_t chunks = plaintext.size() / stream::k_chunk_size + 1;
  out.reserve(out.size() + plaintext.size() + chunks * prim::k_tag_size);
  const SecretBuffer payload_key = prim::hkdf_sha256(ikm, nonce, k_payload_label);
  stream::encrypt(prim::bytes_of(payload_key.view()), plaintext, out);
  return out;
}

SecretBuffer random_file_key()
{
  SecretBuffer file_key(prim::k_file_key_size);
  prim::random_bytes({file_key.data(), file_key.size()});
  return file_key;
}

} // namespace

// --- keys ---

X25519Recipient X25519Recipient::parse(std::string_view age1_string)
{
  const auto decoded = bech32::decode(age1_string);
  // The HRP is compared as written: age recipients are lowercase.
  if (!decoded || decoded->hrp != k_recipient_hrp || decoded->data.size() != prim::k_point_size) {
    throw Error(ErrorKind::key, "malformed X25519 recipient (want age1...)");
  }
  std::array<uint8_t, 32> key{};
  std::memcpy(key.data(), decoded->data.data(), key.size());
  return X25519Recipient(key);
}

std::string X25519Recipient::encode() const
{
  return bech32::encode(k_recipient_hrp, m_public_key);
}

X25519Recipient X25519Recipient::from_public_key(const std::array<uint8_t, 32>& public_key)
{
  return X25519Recipient(public_key);
}

namespace {

X25519Recipient recipient_of(const SecretBuffer& secret)
{
  std::array<uint8_t, 32> public_key{};
  prim::x25519_base(prim::bytes_of(secret.view()), public_key);
  return X25519Recipient::from_public_key(public_key);
}

} // namespace

X25519Identity::X25519Identity(SecretBuffer secret) : m_secret(std::move(secret)), m_recipient(recipient_of(m_secret))
{
}

X25519Identity::X25519Identity(const X25519Identity& other)
  : m_secret(other.m_secret.view()), m_recipient(other.m_recipient)
{
}

X25519Identity& X25519Identity::operator=(const X25519Identity& other)
{
  if (this != &other) {
    m_secret = SecretBuffer(other.m_secret.view());
    m_recipient = other.m_recipient;
  }
  return *this;
}

X25519Identity X25519Identity::generate()
{
  // Any 32 bytes are a valid X25519 scalar; clamping happens inside X25519.
  SecretBuffer secret(prim::k_point_size);
  prim::random_bytes({secret.data(), secret.size()});
  return X25519Identity(std::move(secret));
}

X25519Identity X25519Identity::parse(std::string_view age_secret_key_1)
{
  auto decoded = bech32::decode(age_secret_key_1);
  if (!decoded) {
    throw Error(ErrorKind::key, "malformed X25519 identity (want AGE-SECRET-KEY-1...)");
  }
  SecretBuffer secret(decoded->data);
  prim::wipe(decoded->data);
  // age writes and accepts identities in uppercase only.
  if (decoded->hrp != k_identity_hrp || secret.size() != prim::k_point_size) {
    throw Error(ErrorKind::key, "malformed X25519 identity (want AGE-SECRET-KEY-1...)");
  }
  return X25519Identity(std::move(secret));
}

SecretBuffer X25519Identity::encode() const
{
  // Bech32 checksums the lowercase form; age prints identities uppercase.
  std::string text = bech32::encode(k_identity_hrp_lower, prim::bytes_of(m_secret.view()));
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; });
  SecretBuffer out(text);
  prim::wipe(text);
  return out;
}

std::vector<X25519Identity> parse_identity_file(std::string_view text)
{
  std::vector<X25519Identity> identities;
  size_t pos = 0;
  for (size_t line_number = 1; pos < text.size(); ++line_number) {
    const size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    if (line.empty() || line.starts_with('#')) {
      continue;
    }
    try {
      identities.push_back(X25519Identity::parse(line));
    } catch (const Error&) {
      throw Error(ErrorKind::key, "invalid identity file: line " + std::to_string(line_number)
                                    + " is not an AGE-SECRET-KEY-1 identity");
    }
  }
  if (identities.empty()) {
    throw Error(ErrorKind::key, "invalid identity file: no identities found");
  }
  return identities;
}

SecretBuffer format_identity_file(const X25519Identity& id, util::TimePoint created)
{
  const std::time_t seconds = std::chrono::system_clock::to_time_t(created);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
  const std::string comments =
    std::string("# created: ") + stamp + "\n# public key: " + id.recipient().encode() + "\n";

  const SecretBuffer key = id.encode();
  SecretBuffer out(comments.size() + key.size() + 1);
  std::memcpy(out.data(), comments.data(), comments.size());
  std::memcpy(out.data() + comments.size(), key.data(), key.size());
  out.data()[out.size() - 1] = '\n';
  return out;
}

// --- encryption ---

std::string encrypt(const std::vector<X25519Recipient>& recipients, std::string_view plaintext)
{
  if (recipients.empty()) {
    throw std::invalid_argument("age encrypt: no recipients");
  }
  const SecretBuffer file_key = random_file_key();
  std::vector<Stanza> stanzas;
  for (const auto& recipient : recipients) {
    // A fresh ephemeral key per stanza and per file, as the spec requires.
    SecretBuffer ephemeral(prim::k_point_size);
    prim::random_bytes({ephemeral.data(), ephemeral.size()});
    std::array<uint8_t, prim::k_point_size> share{};
    prim::x25519_base(prim::bytes_of(ephemeral.view()), share);
    const auto shared = prim::x25519(prim::bytes_of(ephemeral.view()), recipient.public_key());
    if (!shared) {
      throw Error(ErrorKind::key, "invalid X25519 recipient: low-order point");
    }
    const std::string salt = concat(share, recipient.public_key());
    const SecretBuffer wrap_key =
      prim::hkdf_sha256(prim::bytes_of(shared->view()), prim::bytes_of(salt), k_x25519_label);
    Stanza stanza{std::string(k_x25519_type), {prim::base64_encode(share)}, std::string(k_wrapped_key_size, '\0')};
    prim::aead_seal(prim::bytes_of(wrap_key.view()), k_zero_nonce, prim::bytes_of(file_key.view()),
                    {reinterpret_cast<uint8_t*>(stanza.body.data()), stanza.body.size()});
    stanzas.push_back(std::move(stanza));
  }
  return finish_file(std::move(stanzas), file_key, plaintext);
}

std::string encrypt_with_passphrase(std::string_view passphrase, std::string_view plaintext, int log_n)
{
  if (log_n < 1 || log_n > prim::k_max_scrypt_log_n) {
    throw std::invalid_argument("age encrypt: scrypt work factor must be between 1 and 22");
  }
  const SecretBuffer file_key = random_file_key();
  std::array<uint8_t, k_scrypt_salt_size> salt{};
  prim::random_bytes(salt);
  const std::string labelled_salt = std::string(k_scrypt_label) + as_string(salt);
  const SecretBuffer wrap_key = prim::scrypt(passphrase, prim::bytes_of(labelled_salt), log_n);
  Stanza stanza{std::string(k_scrypt_type),
                {prim::base64_encode(salt), std::to_string(log_n)},
                std::string(k_wrapped_key_size, '\0')};
  prim::aead_seal(prim::bytes_of(wrap_key.view()), k_zero_nonce, prim::bytes_of(file_key.view()),
                  {reinterpret_cast<uint8_t*>(stanza.body.data()), stanza.body.size()});
  std::vector<Stanza> stanzas;
  stanzas.push_back(std::move(stanza));
  return finish_file(std::move(stanzas), file_key, plaintext);
}

std::string armor(std::string_view binary_age_file)
{
  return format::armor(binary_age_file);
}

std::string dearmor(std::string_view armored_age_file)
{
  return format::dearmor(armored_age_file);
}

// --- decryption ---

namespace {

SecretBuffer decrypt_to_secret(std::string_view file,
                               std::span<const X25519Identity> identities,
                               std::span<const std::string_view> passphrases,
                               int max_log_n)
{
  std::string dearmored;
  if (format::is_armored(file)) {
    dearmored = format::dearmor(file);
    file = dearmored;
  }
  const Header header = format::parse(file);
  // Sized for the worst case up front: a SecretBuffer cannot grow without a
  // copy, and the bound is exact for a payload that authenticates.
  SecretBuffer out(stream::max_plaintext_size(header.payload.size()));
  size_t used = 0;
  decrypt_header(header, identities, passphrases, max_log_n, [&](std::span<const uint8_t> chunk) {
    if (chunk.size() > out.size() - used) {
      throw std::logic_error("age: plaintext larger than its bound");
    }
    if (!chunk.empty()) {
      std::memcpy(out.data() + used, chunk.data(), chunk.size());
      used += chunk.size();
    }
  });
  out.shrink(used);
  return out;
}

} // namespace

SecretBuffer decrypt(std::string_view file, const std::vector<X25519Identity>& identities)
{
  return decrypt_to_secret(file, identities, {}, prim::k_max_scrypt_log_n);
}

SecretBuffer decrypt_with_passphrase(std::string_view file, std::string_view passphrase, int max_log_n)
{
  const std::string_view passphrases[] = {passphrase};
  return decrypt_to_secret(file, {}, passphrases, max_log_n);
}

void decrypt_binary_to(std::string_view file, const Keys& keys, std::string& out)
{
  const auto passphrases = views_of(keys.passphrases);
  const auto append = [&](std::span<const uint8_t> chunk) {
    out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  };
  decrypt_header(format::parse(file), keys.identities, passphrases, keys.max_log_n, append);
}

void decrypt_to(std::string_view file, const Keys& keys, std::string& out)
{
  if (format::is_armored(file)) {
    decrypt_binary_to(format::dearmor(file), keys, out);
  } else {
    decrypt_binary_to(file, keys, out);
  }
}

bool is_encrypted_with_passphrase(std::string_view file)
{
  try {
    std::string dearmored;
    if (format::is_armored(file)) {
      dearmored = format::dearmor(file);
      file = dearmored;
    }
    const Header header = format::parse(file);
    return header.stanzas.size() == 1 && header.stanzas[0].type == k_scrypt_type;
  } catch (const Error&) {
    return false;
  }
}

} // namespace store::age
