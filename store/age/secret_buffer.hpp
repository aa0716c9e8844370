#pragma once
// Owner of secret bytes (file keys, identity scalars, derived keys, decrypted
// plaintext). The storage comes from sodium_malloc: guard pages around it,
// mlocked so it is not swapped out, and wiped by sodium_free. Move only, so a
// secret is never silently duplicated; copy explicitly with SecretBuffer(view()).
// The member functions that touch libsodium live in primitives.cpp.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace store::age {

class SecretBuffer
{
public:
  SecretBuffer() = default;
  explicit SecretBuffer(size_t n); // zero-filled
  SecretBuffer(std::string_view copy_of);
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer();

  uint8_t* data() { return m_data; }
  const uint8_t* data() const { return m_data; }
  size_t size() const { return m_size; }
  bool empty() const { return m_size == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(m_data), m_size}; }

  // Wipes bytes [n, size()) and makes size() == n; the allocation is kept, so
  // a buffer sized for the worst case can be trimmed without a secret copy.
  void shrink(size_t n);

private:
  uint8_t* m_data = nullptr;
  size_t m_size = 0;
};

} // namespace store::age
