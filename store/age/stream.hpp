#pragma once
// The age payload: STREAM (Hoang, Reyhanitabar, Rogaway, Vizar 2015) over
// ChaCha20-Poly1305. The plaintext is cut into 64 KiB chunks; chunk i is
// sealed with nonce = 11-byte big-endian i || 0x01 if it is the final chunk,
// 0x00 otherwise. The final flag is what makes truncation at a chunk boundary
// detectable. Knows nothing of headers or where the payload key comes from.

#include "store/age/primitives.hpp"

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace store::age::stream {

inline constexpr size_t k_chunk_size = 64 * 1024;
inline constexpr size_t k_encrypted_chunk_size = k_chunk_size + primitives::k_tag_size;

// Appends the sealed chunks of `plaintext` to `out`. The final chunk is short
// or full, and empty only when the whole plaintext is empty.
void encrypt(primitives::Bytes key, std::string_view plaintext, std::string& out);

// The most plaintext `ciphertext_size` bytes can carry (exact if it decrypts).
size_t max_plaintext_size(size_t ciphertext_size);

// Called with each chunk once it has authenticated, in order. Chunks released
// before a failure are genuine but the stream is incomplete: callers must
// treat the output as failed unless decrypt returns normally.
using Release = std::function<void(std::span<const uint8_t>)>;

// Throws Error(payload) if the stream does not end with a valid final chunk
// exactly at the end of `ciphertext`.
void decrypt(primitives::Bytes key, std::string_view ciphertext, const Release& release);

} // namespace store::age::stream
