#pragma once
// The crypto glue of age v1 (c2sp.org/age), and the only code that calls
// libsodium. Each function does one primitive exactly as the spec uses it, so
// the callers read like the spec. Secret outputs come back in SecretBuffers.
// Nothing here knows header syntax or chunking.

#include "store/age/secret_buffer.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace store::age::primitives {

using Bytes = std::span<const uint8_t>;

inline Bytes bytes_of(std::string_view s)
{
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline constexpr size_t k_file_key_size = 16;   // the spec's 128-bit file key
inline constexpr size_t k_key_size = 32;        // HKDF output is always 32 bytes; ChaCha20 key
inline constexpr size_t k_tag_size = 16;        // Poly1305
inline constexpr size_t k_aead_nonce_size = 12; // ChaCha20-Poly1305 IETF
inline constexpr size_t k_point_size = 32;      // X25519 scalars and points
inline constexpr size_t k_mac_size = 32;        // HMAC-SHA-256

// N = 2^22 with r = 8 needs 128 * r * N = 4 GiB: a file can name any work
// factor, so anything above this is refused before any memory is allocated.
inline constexpr int k_max_scrypt_log_n = 22;

void random_bytes(std::span<uint8_t> out);
void wipe(void* data, size_t size);
void wipe(std::string& s); // wipes the contents; the caller then drops the string
bool equal_constant_time(Bytes a, Bytes b);

// RFC 5869 with SHA-256, any output length up to 255 * 32.
void hkdf_sha256(Bytes ikm, Bytes salt, std::string_view info, std::span<uint8_t> out);
// The spec's "HKDF-SHA-256(ikm, salt, info)": always 32 bytes.
SecretBuffer hkdf_sha256(Bytes ikm, Bytes salt, std::string_view info);
void hmac_sha256(Bytes key, Bytes message, std::span<uint8_t, k_mac_size> out);

// X25519(scalar, point). Returns nullopt when the result is all zeros (the
// point has low order), which the spec says MUST abort.
std::optional<SecretBuffer> x25519(Bytes scalar, Bytes point);
void x25519_base(Bytes scalar, std::span<uint8_t, k_point_size> out);

// ChaCha20-Poly1305 (IETF, 12-byte nonce), no associated data. `out` holds
// plaintext.size() + k_tag_size bytes for seal, ciphertext.size() - k_tag_size
// for open; open returns false if authentication fails (out is then zeroed).
void aead_seal(Bytes key, Bytes nonce, Bytes plaintext, std::span<uint8_t> out);
bool aead_open(Bytes key, Bytes nonce, Bytes ciphertext, std::span<uint8_t> out);

// scrypt(N = 2^log_n, r = 8, p = 1, dkLen = 32). Throws std::invalid_argument
// for log_n outside [1, k_max_scrypt_log_n], std::runtime_error if out of memory.
SecretBuffer scrypt(std::string_view passphrase, Bytes salt, int log_n);

// Unpadded standard base64, as used throughout the header. Decoding is strict:
// canonical encodings only, no padding, no whitespace; nullopt otherwise.
std::string base64_encode(Bytes data);
std::optional<std::string> base64_decode(std::string_view text);
// Padded standard base64, as used by the ASCII armor, equally strict.
std::string base64_encode_padded(Bytes data);
std::optional<std::string> base64_decode_padded(std::string_view text);

// Hex for keys kept in text (the audit key in secrets.age), through libsodium,
// whose codec runs in constant time for a given length. Encoding is lowercase;
// decoding fills `out` from exactly 2 * out.size() hex digits (either case)
// and returns false for anything else.
std::string hex_encode(Bytes data);
bool hex_decode(std::string_view hex, std::span<uint8_t> out);

} // namespace store::age::primitives
