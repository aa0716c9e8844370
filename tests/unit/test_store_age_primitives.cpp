#include "store/age/primitives.hpp"

#include <doctest/doctest.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace prim = store::age::primitives;

namespace {

std::vector<uint8_t> range_bytes(int from, int to)
{
  std::vector<uint8_t> out;
  for (int i = from; i < to; ++i) {
    out.push_back(static_cast<uint8_t>(i));
  }
  return out;
}

std::string hex(std::span<const uint8_t> data)
{
  static const char* k_digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : data) {
    out += k_digits[b >> 4];
    out += k_digits[b & 15];
  }
  return out;
}

std::string hkdf_hex(const std::vector<uint8_t>& ikm,
                     const std::vector<uint8_t>& salt,
                     const std::vector<uint8_t>& info,
                     size_t length)
{
  std::vector<uint8_t> out(length);
  prim::hkdf_sha256(ikm, salt, std::string(info.begin(), info.end()), out);
  return hex(out);
}

} // namespace

TEST_CASE("age hkdf_sha256 matches RFC 5869 test cases 1 to 3")
{
  const std::vector<uint8_t> ikm(22, 0x0b);
  // Case 1: a 13-byte salt, 42 bytes out (two HMAC blocks).
  CHECK(hkdf_hex(ikm, range_bytes(0x00, 0x0d), range_bytes(0xf0, 0xfa), 42)
        == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  // Case 2: 80-byte inputs, longer than the HMAC block, 82 bytes out.
  CHECK(hkdf_hex(range_bytes(0x00, 0x50), range_bytes(0x60, 0xb0), range_bytes(0xb0, 0x100), 82)
        == "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600"
           "c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
  // Case 3: empty salt and info, as age's header key uses.
  CHECK(hkdf_hex(ikm, {}, {}, 42)
        == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST_CASE("age hkdf_sha256 32-byte form agrees with the general one")
{
  const std::vector<uint8_t> ikm(16, 7);
  const std::vector<uint8_t> salt(16, 9);
  const auto key = prim::hkdf_sha256(ikm, salt, "payload");
  std::vector<uint8_t> expected(32);
  prim::hkdf_sha256(ikm, salt, "payload", expected);
  CHECK(key.size() == 32);
  CHECK(hex({key.data(), key.size()}) == hex(expected));
}

TEST_CASE("age base64 accepts only canonical unpadded encodings")
{
  CHECK(prim::base64_encode(prim::bytes_of("a")) == "YQ");
  CHECK(prim::base64_decode("YQ") == std::string("a"));
  CHECK(prim::base64_decode("") == std::string());
  CHECK(prim::base64_decode("YWJj") == std::string("abc"));
  CHECK_FALSE(prim::base64_decode("YQ=="));   // padding
  CHECK_FALSE(prim::base64_decode("YR"));     // non-zero unused bits
  CHECK_FALSE(prim::base64_decode("Y"));      // partial group
  CHECK_FALSE(prim::base64_decode("YW Jj"));  // whitespace
  CHECK_FALSE(prim::base64_decode("YWJj\n")); // newline
  CHECK_FALSE(prim::base64_decode("YW-_"));   // URL alphabet
  CHECK(prim::base64_encode_padded(prim::bytes_of("a")) == "YQ==");
  CHECK(prim::base64_decode_padded("YQ==") == std::string("a"));
  CHECK_FALSE(prim::base64_decode_padded("YQ"));
  CHECK_FALSE(prim::base64_decode_padded("YR=="));
  CHECK_FALSE(prim::base64_decode_padded("YQ==YQ=="));
}

TEST_CASE("age hex round-trips a key and accepts exactly 2 * size hex digits")
{
  const auto key = range_bytes(0xf0, 0x100);
  CHECK(prim::hex_encode(key) == "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  CHECK(prim::hex_encode({}).empty());
  std::array<uint8_t, 16> out{};
  REQUIRE(prim::hex_decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", out));
  CHECK(std::vector<uint8_t>(out.begin(), out.end()) == key);
  REQUIRE(prim::hex_decode("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF", out)); // either case
  CHECK(std::vector<uint8_t>(out.begin(), out.end()) == key);
  CHECK_FALSE(prim::hex_decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfe", out));     // short
  CHECK_FALSE(prim::hex_decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00", out)); // long
  CHECK_FALSE(prim::hex_decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfefg", out));   // a non-hex digit at the end
  CHECK_FALSE(prim::hex_decode("f0 1f2f3f4f5f6f7f8f9fafbfcfdfeff", out));   // ... or inside
}

TEST_CASE("age x25519 refuses low-order points")
{
  std::vector<uint8_t> scalar(32, 0x42);
  std::vector<uint8_t> zero_point(32, 0);
  CHECK_FALSE(prim::x25519(scalar, zero_point).has_value());
  std::vector<uint8_t> one_point(32, 0);
  one_point[0] = 1;
  CHECK_FALSE(prim::x25519(scalar, one_point).has_value());

  std::array<uint8_t, 32> a_pub{};
  std::array<uint8_t, 32> b_pub{};
  std::vector<uint8_t> b_scalar(32, 0x17);
  prim::x25519_base(scalar, a_pub);
  prim::x25519_base(b_scalar, b_pub);
  const auto ab = prim::x25519(scalar, b_pub);
  const auto ba = prim::x25519(b_scalar, a_pub);
  REQUIRE(ab);
  REQUIRE(ba);
  CHECK(ab->view() == ba->view());
}

TEST_CASE("age aead_open rejects a flipped bit")
{
  const std::vector<uint8_t> key(32, 1);
  const std::array<uint8_t, 12> nonce{};
  const std::string message = "sixteen byte key";
  std::vector<uint8_t> sealed(message.size() + prim::k_tag_size);
  prim::aead_seal(key, nonce, prim::bytes_of(message), sealed);
  std::vector<uint8_t> opened(message.size());
  CHECK(prim::aead_open(key, nonce, sealed, opened));
  CHECK(std::string(opened.begin(), opened.end()) == message);
  sealed[3] ^= 1;
  CHECK_FALSE(prim::aead_open(key, nonce, sealed, opened));
}

TEST_CASE("age scrypt refuses work factors above 22 before computing")
{
  const std::vector<uint8_t> salt(16, 0);
  CHECK_THROWS_AS(prim::scrypt("pw", salt, 23), std::invalid_argument);
  CHECK_THROWS_AS(prim::scrypt("pw", salt, 0), std::invalid_argument);
  const auto a = prim::scrypt("pw", salt, 4);
  const auto b = prim::scrypt("pw", salt, 4);
  const auto c = prim::scrypt("pw", salt, 5);
  CHECK(a.size() == 32);
  CHECK(a.view() == b.view());
  CHECK(a.view() != c.view());
}

TEST_CASE("age SecretBuffer moves and shrinks")
{
  store::age::SecretBuffer a(std::string_view("secret"));
  CHECK(a.view() == "secret");
  store::age::SecretBuffer b(std::move(a));
  CHECK(a.empty()); // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(b.view() == "secret");
  b.shrink(3);
  CHECK(b.view() == "sec");
  store::age::SecretBuffer empty(size_t{0});
  CHECK(empty.empty());
  CHECK(empty.view().empty());
}
