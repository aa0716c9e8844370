#include "store/age/primitives.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace store::age::primitives {

namespace {

// sodium_init picks the fastest implementations and seeds the RNG; it is
// idempotent and thread-safe, but a function-local static keeps it to once.
void ensure_init()
{
  static const bool k_ready = sodium_init() >= 0;
  if (!k_ready) {
    throw std::runtime_error("libsodium failed to initialize");
  }
}

// libsodium declares its pointer arguments nonnull even when the length is
// zero (an empty HKDF salt or info), so empty spans point here instead.
const uint8_t* nonnull(Bytes b)
{
  static const uint8_t k_empty = 0;
  return b.empty() ? &k_empty : b.data();
}

} // namespace

void random_bytes(std::span<uint8_t> out)
{
  ensure_init();
  randombytes_buf(out.data(), out.size());
}

void wipe(void* data, size_t size)
{
  if (size != 0) {
    sodium_memzero(data, size);
  }
}

void wipe(std::string& s)
{
  wipe(s.data(), s.size());
}

bool equal_constant_time(Bytes a, Bytes b)
{
  // Lengths are public (fixed by the format); only the contents are secret.
  return a.size() == b.size() && (a.empty() || sodium_memcmp(a.data(), b.data(), a.size()) == 0);
}

void hmac_sha256(Bytes key, Bytes message, std::span<uint8_t, k_mac_size> out)
{
  ensure_init();
  // The init/update/final form takes a key of any length; the one-shot
  // crypto_auth_hmacsha256 insists on 32 bytes, but HKDF salts are 0, 16 or 64.
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, nonnull(key), key.size());
  crypto_auth_hmacsha256_update(&state, nonnull(message), message.size());
  crypto_auth_hmacsha256_final(&state, out.data());
  wipe(&state, sizeof(state)); // holds the keyed inner/outer hash states
}

void hkdf_sha256(Bytes ikm, Bytes salt, std::string_view info, std::span<uint8_t> out)
{
  constexpr size_t k_hash_size = crypto_auth_hmacsha256_BYTES;
  if (out.size() > 255 * k_hash_size) {
    throw std::invalid_argument("hkdf output too long");
  }
  // Extract. An empty salt is HMAC with an empty key, which HMAC pads to the
  // same block as RFC 5869's "HashLen zeros".
  uint8_t prk[k_hash_size];
  hmac_sha256(salt, ikm, prk);

  // Expand: T(i) = HMAC(PRK, T(i-1) || info || i).
  uint8_t block[k_hash_size];
  size_t done = 0;
  for (uint8_t counter = 1; done < out.size(); ++counter) {
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init(&state, prk, sizeof(prk));
    if (counter > 1) {
      crypto_auth_hmacsha256_update(&state, block, sizeof(block));
    }
    crypto_auth_hmacsha256_update(&state, nonnull(bytes_of(info)), info.size());
    crypto_auth_hmacsha256_update(&state, &counter, 1);
    crypto_auth_hmacsha256_final(&state, block);
    wipe(&state, sizeof(state));
    const size_t n = std::min(out.size() - done, sizeof(block));
    std::memcpy(out.data() + done, block, n);
    done += n;
  }
  wipe(prk, sizeof(prk));
  wipe(block, sizeof(block));
}

SecretBuffer hkdf_sha256(Bytes ikm, Bytes salt, std::string_view info)
{
  SecretBuffer key(k_key_size);
  hkdf_sha256(ikm, salt, info, {key.data(), key.size()});
  return key;
}

std::optional<SecretBuffer> x25519(Bytes scalar, Bytes point)
{
  ensure_init();
  if (scalar.size() != k_point_size || point.size() != k_point_size) {
    throw std::invalid_argument("x25519 input has the wrong length");
  }
  SecretBuffer shared(k_point_size);
  // libsodium returns -1 both for a blacklisted low-order point and for an
  // all-zero result; either way the peer contributed nothing secret.
  if (crypto_scalarmult(shared.data(), scalar.data(), point.data()) != 0) {
    return std::nullopt;
  }
  return shared;
}

void x25519_base(Bytes scalar, std::span<uint8_t, k_point_size> out)
{
  ensure_init();
  if (scalar.size() != k_point_size) {
    throw std::invalid_argument("x25519 scalar has the wrong length");
  }
  crypto_scalarmult_base(out.data(), scalar.data());
}

void aead_seal(Bytes key, Bytes nonce, Bytes plaintext, std::span<uint8_t> out)
{
  ensure_init();
  if (key.size() != crypto_aead_chacha20poly1305_ietf_KEYBYTES
      || nonce.size() != crypto_aead_chacha20poly1305_ietf_NPUBBYTES
      || out.size() != plaintext.size() + k_tag_size) {
    throw std::invalid_argument("aead_seal: bad lengths");
  }
  unsigned long long written = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &written, nonnull(plaintext), plaintext.size(), nullptr, 0,
                                            nullptr, nonce.data(), key.data());
}

bool aead_open(Bytes key, Bytes nonce, Bytes ciphertext, std::span<uint8_t> out)
{
  ensure_init();
  if (key.size() != crypto_aead_chacha20poly1305_ietf_KEYBYTES
      || nonce.size() != crypto_aead_chacha20poly1305_ietf_NPUBBYTES || ciphertext.size() < k_tag_size
      || out.size() != ciphertext.size() - k_tag_size) {
    throw std::invalid_argument("aead_open: bad lengths");
  }
  unsigned long long written = 0;
  return crypto_aead_chacha20poly1305_ietf_decrypt(out.data(), &written, nullptr, ciphertext.data(),
                                                   ciphertext.size(), nullptr, 0, nonce.data(), key.data())
         == 0;
}

SecretBuffer scrypt(std::string_view passphrase, Bytes salt, int log_n)
{
  ensure_init();
  if (log_n < 1 || log_n > k_max_scrypt_log_n) {
    throw std::invalid_argument("scrypt work factor out of range");
  }
  // r = 8, p = 1 are fixed by the spec; only N travels in the stanza.
  constexpr uint32_t k_r = 8;
  constexpr uint32_t k_p = 1;
  SecretBuffer key(k_key_size);
  if (crypto_pwhash_scryptsalsa208sha256_ll(nonnull(bytes_of(passphrase)), passphrase.size(), nonnull(salt),
                                            salt.size(), uint64_t{1} << log_n, k_r, k_p, key.data(), key.size())
      != 0) {
    throw std::runtime_error("scrypt failed: out of memory");
  }
  return key;
}

namespace {

std::string encode(Bytes data, int variant)
{
  ensure_init();
  std::string out(sodium_base64_encoded_len(data.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), nonnull(data), data.size(), variant);
  out.pop_back(); // the terminating NUL
  return out;
}

std::optional<std::string> decode(std::string_view text, int variant)
{
  ensure_init();
  if (text.empty()) {
    return std::string();
  }
  // libsodium 1.0.18 decodes every byte >= 0x80 as a base64 digit (found by
  // fuzz/fuzz_age_decrypt.cpp), so only the alphabet and '=' get that far.
  for (const char c : text) {
    const bool alphabet =
      (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
    if (!alphabet) {
      return std::nullopt;
    }
  }
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t written = 0;
  // No `ignore` set and no b64_end: any character outside the alphabet, a
  // leftover partial group, non-zero unused bits or (for the padded variant)
  // wrong padding makes the whole decode fail. That is RFC 4648 section 3.5
  // canonical form, which the spec requires.
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &written, nullptr, variant)
      != 0) {
    return std::nullopt;
  }
  out.resize(written);
  return out;
}

} // namespace

std::string base64_encode(Bytes data)
{
  return encode(data, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

std::optional<std::string> base64_decode(std::string_view text)
{
  return decode(text, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

std::string base64_encode_padded(Bytes data)
{
  return encode(data, sodium_base64_VARIANT_ORIGINAL);
}

std::optional<std::string> base64_decode_padded(std::string_view text)
{
  return decode(text, sodium_base64_VARIANT_ORIGINAL);
}

std::string hex_encode(Bytes data)
{
  std::string hex(2 * data.size() + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), nonnull(data), data.size());
  hex.pop_back(); // the terminating NUL
  return hex;
}

bool hex_decode(std::string_view hex, std::span<uint8_t> out)
{
  if (hex.size() != 2 * out.size()) {
    return false;
  }
  size_t written = 0;
  const char* end = nullptr;
  // With hex_end set, a non-hex character ends the decode instead of failing
  // it: `end` then falls short of the text's end.
  return sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &written, &end) == 0
         && written == out.size() && end == hex.data() + hex.size();
}

} // namespace store::age::primitives

namespace store::age {

// SecretBuffer's storage is a libsodium allocation, so it is implemented here
// with the other libsodium calls.

namespace {

// The shared regions of small buffers (why: secret_buffer.hpp). Each region
// is one sodium_malloc (guard pages at its ends, mlocked), cut into slots of
// one size class; a freed slot is wiped with sodium_memzero before reuse.
constexpr size_t k_arena_min = 32; // slot sizes double from here to k_arena_max
constexpr size_t k_arena_max = SecretBuffer::k_pooled_max;
constexpr size_t k_arena_classes = 6;
constexpr size_t k_region_size = 16 * 1024; // a multiple of the page size, so slots are aligned
static_assert(k_arena_min << (k_arena_classes - 1) == k_arena_max);

size_t class_of(size_t n)
{
  size_t cls = 0;
  while ((k_arena_min << cls) < n) {
    ++cls;
  }
  return cls;
}

// Free slots per size class. Regions are kept once carved (a store's peak is
// its steady state) and are never unmapped, so a freed slot is wiped, not
// returned to the system. Thread-safe: rotation hooks and the snapshot
// writer allocate off the io thread.
class Arena
{
public:
  uint8_t* allocate(size_t cls)
  {
    std::lock_guard lock(m_mutex);
    auto& free = m_free[cls];
    if (free.empty()) {
      carve(cls);
    }
    uint8_t* slot = free.back();
    free.pop_back();
    return slot;
  }

  // `slot` has been wiped by the caller.
  void release(uint8_t* slot, size_t cls)
  {
    std::lock_guard lock(m_mutex);
    m_free[cls].push_back(slot);
  }

private:
  void carve(size_t cls)
  {
    const size_t slot_size = k_arena_min << cls;
    auto& free = m_free[cls];
    free.reserve(free.size() + k_region_size / slot_size); // before the region, so a throw leaks nothing
    auto* region = static_cast<uint8_t*>(sodium_malloc(k_region_size));
    if (region == nullptr) {
      throw std::bad_alloc();
    }
    sodium_memzero(region, k_region_size); // sodium_malloc fills with a canary byte
    for (size_t offset = k_region_size; offset >= slot_size; offset -= slot_size) {
      free.push_back(region + offset - slot_size); // handed out from the region's start
    }
  }

  std::mutex m_mutex;
  std::array<std::vector<uint8_t*>, k_arena_classes> m_free;
};

// Never destroyed: a SecretBuffer in static storage may be freed after any
// destructor of ours has run.
Arena& arena()
{
  static Arena* const k_arena = new Arena;
  return *k_arena;
}

void release(uint8_t* data, size_t capacity)
{
  if (data == nullptr) {
    return;
  }
  if (capacity <= k_arena_max) {
    sodium_memzero(data, capacity);
    arena().release(data, class_of(capacity));
  } else {
    sodium_free(data); // wipes
  }
}

} // namespace

SecretBuffer::SecretBuffer(size_t n)
{
  if (n == 0) {
    return;
  }
  primitives::ensure_init();
  if (n <= k_arena_max) {
    const size_t cls = class_of(n);
    m_data = arena().allocate(cls); // zero-filled: wiped when carved and when freed
    m_capacity = k_arena_min << cls;
  } else {
    // sodium_malloc places the region against a guard page and mlocks it (an
    // mlock failure under RLIMIT_MEMLOCK is tolerated by libsodium).
    m_data = static_cast<uint8_t*>(sodium_malloc(n));
    if (m_data == nullptr) {
      throw std::bad_alloc();
    }
    sodium_memzero(m_data, n);
    m_capacity = n;
  }
  m_size = n;
}

SecretBuffer::SecretBuffer(std::string_view copy_of) : SecretBuffer(copy_of.size())
{
  if (!copy_of.empty()) {
    std::memcpy(m_data, copy_of.data(), copy_of.size());
  }
}

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
  : m_data(std::exchange(other.m_data, nullptr)),
    m_size(std::exchange(other.m_size, 0)),
    m_capacity(std::exchange(other.m_capacity, 0))
{
}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept
{
  if (this != &other) {
    release(m_data, m_capacity);
    m_data = std::exchange(other.m_data, nullptr);
    m_size = std::exchange(other.m_size, 0);
    m_capacity = std::exchange(other.m_capacity, 0);
  }
  return *this;
}

SecretBuffer::~SecretBuffer()
{
  release(m_data, m_capacity);
}

void SecretBuffer::shrink(size_t n)
{
  if (n < m_size) {
    sodium_memzero(m_data + n, m_size - n);
    m_size = n;
  }
}

} // namespace store::age
