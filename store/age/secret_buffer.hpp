#pragma once
// Owner of secret bytes (file keys, identity scalars, derived keys, decrypted
// plaintext, the store's values). The storage is mlocked so it is not swapped
// out, and wiped (sodium_memzero) when freed. A buffer above k_pooled_max gets
// its own sodium_malloc, with guard pages around it. Smaller ones share
// regions that are sodium_malloc'ed 16 KiB at a time: one sodium_malloc per
// value (an mmap, mprotects, an mlock and ~9 KiB resident) made loading
// 10,000 secrets take half a second; the regions keep their end guard pages,
// not one between two values. Thread-safe to create and free from any thread.
// Move only, so a secret is never silently duplicated; copy explicitly with
// SecretBuffer(view()). The member functions that touch libsodium live in
// primitives.cpp.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace store::age {

class SecretBuffer
{
public:
  // Buffers up to this size come from the shared regions.
  static constexpr size_t k_pooled_max = 1024;

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
  size_t m_capacity = 0; // what was allocated: a slot size, or the sodium_malloc size
};

} // namespace store::age
