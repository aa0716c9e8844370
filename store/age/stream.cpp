#include "store/age/stream.hpp"

#include "store/age/error.hpp"

#include <algorithm>
#include <array>

namespace store::age::stream {

namespace {

using Nonce = std::array<uint8_t, primitives::k_aead_nonce_size>;

constexpr size_t k_last_flag_index = primitives::k_aead_nonce_size - 1;

// The counter fills bytes 0..10; a std::string cannot hold 2^64 chunks, so
// the top 3 bytes stay zero and the counter cannot wrap.
Nonce make_nonce(uint64_t counter, bool last)
{
  Nonce nonce{};
  for (size_t i = 0; i < 8; ++i) {
    nonce[k_last_flag_index - 1 - i] = static_cast<uint8_t>(counter >> (8 * i));
  }
  nonce[k_last_flag_index] = last ? 1 : 0;
  return nonce;
}

[[noreturn]] void payload_error(const std::string& what)
{
  throw Error(ErrorKind::payload, "corrupted age payload: " + what);
}

} // namespace

void encrypt(primitives::Bytes key, std::string_view plaintext, std::string& out)
{
  size_t pos = 0;
  uint64_t counter = 0;
  do {
    const size_t n = std::min(k_chunk_size, plaintext.size() - pos);
    const bool last = pos + n == plaintext.size();
    const Nonce nonce = make_nonce(counter, last);
    const size_t at = out.size();
    out.resize(at + n + primitives::k_tag_size);
    primitives::aead_seal(key, nonce, primitives::bytes_of(plaintext.substr(pos, n)),
                          {reinterpret_cast<uint8_t*>(out.data()) + at, n + primitives::k_tag_size});
    pos += n;
    ++counter;
  } while (pos < plaintext.size());
}

size_t max_plaintext_size(size_t ciphertext_size)
{
  const size_t full = ciphertext_size / k_encrypted_chunk_size;
  const size_t rest = ciphertext_size % k_encrypted_chunk_size;
  return full * k_chunk_size + (rest > primitives::k_tag_size ? rest - primitives::k_tag_size : 0);
}

void decrypt(primitives::Bytes key, std::string_view ciphertext, const Release& release)
{
  SecretBuffer chunk(k_chunk_size);
  size_t pos = 0;
  uint64_t counter = 0;
  while (true) {
    const size_t remaining = ciphertext.size() - pos;
    if (remaining == 0) {
      // Only reachable after a non-final chunk: the stream was cut at a
      // chunk boundary (or, for counter 0, there are no chunks at all).
      payload_error("missing final chunk");
    }
    if (remaining < k_encrypted_chunk_size) {
      // A short chunk can only be the final one.
      if (remaining < primitives::k_tag_size) {
        payload_error("truncated chunk");
      }
      if (remaining == primitives::k_tag_size && counter != 0) {
        payload_error("empty final chunk"); // only an empty file has one
      }
      const size_t n = remaining - primitives::k_tag_size;
      if (!primitives::aead_open(key, make_nonce(counter, true), primitives::bytes_of(ciphertext.substr(pos)),
                                 {chunk.data(), n})) {
        payload_error("chunk failed authentication");
      }
      release({chunk.data(), n});
      return;
    }

    // A full-size chunk is either a middle chunk or a full final chunk; only
    // the key can tell, so try both flags.
    const auto sealed = primitives::bytes_of(ciphertext.substr(pos, k_encrypted_chunk_size));
    if (primitives::aead_open(key, make_nonce(counter, false), sealed, {chunk.data(), k_chunk_size})) {
      release({chunk.data(), k_chunk_size});
      pos += k_encrypted_chunk_size;
      ++counter;
      continue;
    }
    if (!primitives::aead_open(key, make_nonce(counter, true), sealed, {chunk.data(), k_chunk_size})) {
      payload_error("chunk failed authentication");
    }
    release({chunk.data(), k_chunk_size});
    if (remaining != k_encrypted_chunk_size) {
      payload_error("trailing data after the final chunk");
    }
    return;
  }
}

} // namespace store::age::stream
