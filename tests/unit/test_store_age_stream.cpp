#include "store/age/error.hpp"
#include "store/age/primitives.hpp"
#include "store/age/stream.hpp"

#include <doctest/doctest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace age = store::age;
namespace prim = store::age::primitives;
namespace stream = store::age::stream;

namespace {

constexpr size_t k_cs = stream::k_chunk_size;
constexpr size_t k_ecs = stream::k_encrypted_chunk_size;

std::string random_string(size_t n)
{
  std::string s(n, '\0');
  prim::random_bytes({reinterpret_cast<uint8_t*>(s.data()), s.size()});
  return s;
}

std::vector<uint8_t> test_key()
{
  return std::vector<uint8_t>(32, 0x5a);
}

std::string encrypt(const std::string& plaintext)
{
  std::string out;
  stream::encrypt(test_key(), plaintext, out);
  return out;
}

// Decrypts, returning what was released; `kind` is set if it threw.
std::string decrypt(const std::string& ciphertext, std::optional<age::ErrorKind>& kind)
{
  std::string released;
  kind.reset();
  try {
    stream::decrypt(test_key(), ciphertext, [&](std::span<const uint8_t> chunk) {
      released.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    });
  } catch (const age::Error& e) {
    kind = e.kind();
  }
  return released;
}

std::string seal_chunk(uint64_t counter, bool last, const std::string& plaintext)
{
  std::array<uint8_t, 12> nonce{};
  for (size_t i = 0; i < 8; ++i) {
    nonce[10 - i] = static_cast<uint8_t>(counter >> (8 * i));
  }
  nonce[11] = last ? 1 : 0;
  std::string out(plaintext.size() + prim::k_tag_size, '\0');
  prim::aead_seal(test_key(), nonce, prim::bytes_of(plaintext),
                  {reinterpret_cast<uint8_t*>(out.data()), out.size()});
  return out;
}

} // namespace

TEST_CASE("age stream round-trips at every chunk boundary")
{
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, k_cs - 1, k_cs, k_cs + 1, 2 * k_cs, 2 * k_cs + 500}) {
    CAPTURE(n);
    const std::string plaintext = random_string(n);
    const std::string sealed = encrypt(plaintext);
    // No empty final chunk unless the plaintext is empty.
    const size_t chunks = n == 0 ? 1 : (n + k_cs - 1) / k_cs;
    CHECK(sealed.size() == n + chunks * prim::k_tag_size);
    CHECK(stream::max_plaintext_size(sealed.size()) == n);
    std::optional<age::ErrorKind> kind;
    CHECK(decrypt(sealed, kind) == plaintext);
    CHECK_FALSE(kind.has_value());
  }
}

TEST_CASE("age stream rejects tampering, truncation and trailing data")
{
  const std::string plaintext = random_string(2 * k_cs + 500);
  const std::string sealed = encrypt(plaintext);
  std::optional<age::ErrorKind> kind;

  SUBCASE("a flipped bit in the last chunk releases the chunks before it")
  {
    std::string bad = sealed;
    bad[2 * k_ecs + 10] ^= 1;
    CHECK(decrypt(bad, kind) == plaintext.substr(0, 2 * k_cs));
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("a flipped bit in the first chunk releases nothing")
  {
    std::string bad = sealed;
    bad[5] ^= 1;
    CHECK(decrypt(bad, kind).empty());
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("truncation at a chunk boundary is detected")
  {
    CHECK(decrypt(sealed.substr(0, 2 * k_ecs), kind) == plaintext.substr(0, 2 * k_cs));
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("truncation inside a chunk is detected")
  {
    CHECK(decrypt(sealed.substr(0, sealed.size() - 1), kind).size() == 2 * k_cs);
    CHECK(kind == age::ErrorKind::payload);
    decrypt(sealed.substr(0, 2 * k_ecs + 10), kind);
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("trailing data after the final chunk is detected")
  {
    decrypt(sealed + "x", kind);
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("swapped chunks fail")
  {
    const std::string swapped = sealed.substr(k_ecs, k_ecs) + sealed.substr(0, k_ecs) + sealed.substr(2 * k_ecs);
    CHECK(decrypt(swapped, kind).empty());
    CHECK(kind == age::ErrorKind::payload);
  }
  SUBCASE("an empty payload has no final chunk")
  {
    CHECK(decrypt("", kind).empty());
    CHECK(kind == age::ErrorKind::payload);
  }
}

TEST_CASE("age stream rejects an empty final chunk after a full one")
{
  const std::string first = random_string(k_cs);
  const std::string sealed = seal_chunk(0, false, first) + seal_chunk(1, true, "");
  std::optional<age::ErrorKind> kind;
  CHECK(decrypt(sealed, kind) == first);
  CHECK(kind == age::ErrorKind::payload);
  // ...while a full final chunk is how a 64 KiB plaintext ends.
  CHECK(decrypt(seal_chunk(0, true, first), kind) == first);
  CHECK_FALSE(kind.has_value());
  // A short chunk is final by position, so it must carry the final flag.
  decrypt(seal_chunk(0, false, "short"), kind);
  CHECK(kind == age::ErrorKind::payload);
}
