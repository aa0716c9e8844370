#pragma once
// The audit chain's key (DESIGN.md section 6): 32 random bytes kept in
// secrets.age (the store's top-level "audit_key" member), so that only a
// process that can decrypt the store can write a line `verify` accepts.
//
// Lines are MAC'd with HMAC-SHA-256 (libsodium's crypto_auth_hmacsha256): a
// plain SHA-256 chain can be recomputed by anyone who can write the file.
// The bytes live in sodium_malloc'd memory (guard pages, mlocked, wiped when
// freed). Immutable after construction: any thread may use one Key.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace audit {

class Key
{
public:
  static constexpr size_t k_size = 32;

  // 32 fresh random bytes.
  static Key generate();
  // Exactly k_size bytes; throws util::Error (Errc::internal) otherwise.
  explicit Key(std::string_view bytes);
  // 64 hex digits (as stored in secrets.age); nullopt-like failure is a throw
  // of util::Error (Errc::decryption), naming the member.
  static Key from_hex(std::string_view hex);

  Key(Key&&) noexcept = default;
  Key& operator=(Key&&) noexcept = default;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key() = default;

  // Lowercase hex HMAC-SHA-256 of `data` under this key.
  std::string mac_hex(std::string_view data) const;
  // The raw bytes (for the store to persist; wipe any copy).
  std::string_view bytes() const;
  // Lowercase hex of the raw bytes (for the store to persist; wipe the copy).
  std::string hex() const;

private:
  struct Free
  {
    void operator()(unsigned char* p) const;
  };
  Key() = default;
  std::unique_ptr<unsigned char, Free> m_bytes;
};

// Constant-time comparison of two hex MACs of equal length.
bool mac_equal(std::string_view a, std::string_view b);

} // namespace audit
