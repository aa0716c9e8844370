// Every libsodium call of the audit log: SHA-256 for plain lines and
// placeholders, HMAC-SHA-256 for keyed lines and the anchor, the key's
// memory and its generation.

#include "audit/chain.hpp"
#include "audit/key.hpp"

#include "util/error.hpp"

#include <sodium.h>

namespace audit {

namespace {

static_assert(Key::k_size == crypto_auth_hmacsha256_KEYBYTES,
              "the key is exactly one HMAC-SHA-256 key: no derivation step to get wrong");

void ensure_sodium()
{
  // sodium_init is idempotent; a function-local static makes the first call
  // thread-safe without a separate once_flag.
  static const bool initialized = sodium_init() >= 0;
  if (!initialized) {
    throw util::Error(util::Errc::internal, "failed to initialize libsodium");
  }
}

std::string to_hex(const unsigned char* bytes, size_t size)
{
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    hex += k_digits[bytes[i] >> 4];
    hex += k_digits[bytes[i] & 0x0f];
  }
  return hex;
}

unsigned char* allocate_key()
{
  ensure_sodium();
  // sodium_malloc: guard pages around it, mlocked, and freed with a wipe.
  auto* p = static_cast<unsigned char*>(sodium_malloc(Key::k_size));
  if (!p) {
    throw util::Error(util::Errc::internal, "failed to allocate memory for the audit key");
  }
  return p;
}

} // namespace

std::string sha256_hex(std::string_view data)
{
  ensure_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return to_hex(digest, sizeof(digest));
}

void Key::Free::operator()(unsigned char* p) const
{
  sodium_free(p);
}

Key Key::generate()
{
  Key key;
  key.m_bytes.reset(allocate_key());
  randombytes_buf(key.m_bytes.get(), k_size);
  return key;
}

Key::Key(std::string_view bytes)
{
  if (bytes.size() != k_size) {
    throw util::Error(util::Errc::internal, "an audit key must be " + std::to_string(k_size) + " bytes");
  }
  m_bytes.reset(allocate_key());
  std::copy(bytes.begin(), bytes.end(), m_bytes.get());
}

Key Key::from_hex(std::string_view hex)
{
  Key key;
  key.m_bytes.reset(allocate_key());
  size_t written = 0;
  const char* end = nullptr;
  // Exactly 64 hex digits, nothing else: a truncated key must not load as a
  // shorter (zero-padded) one.
  if (hex.size() != 2 * k_size
      || sodium_hex2bin(key.m_bytes.get(), k_size, hex.data(), hex.size(), nullptr, &written, &end) != 0
      || written != k_size || end != hex.data() + hex.size()) {
    throw util::Error(util::Errc::decryption, "the audit key is not " + std::to_string(2 * k_size) + " hex digits");
  }
  return key;
}

std::string Key::mac_hex(std::string_view data) const
{
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(mac, reinterpret_cast<const unsigned char*>(data.data()), data.size(), m_bytes.get());
  return to_hex(mac, sizeof(mac));
}

std::string_view Key::bytes() const
{
  return {reinterpret_cast<const char*>(m_bytes.get()), k_size};
}

std::string Key::hex() const
{
  return to_hex(m_bytes.get(), k_size);
}

bool mac_equal(std::string_view a, std::string_view b)
{
  // A MAC compared with memcmp leaks how many leading characters matched,
  // which is what a forger needs to guess one byte at a time.
  return a.size() == b.size()
         && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace audit
