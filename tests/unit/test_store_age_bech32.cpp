#include "store/age/bech32.hpp"
#include "store/age/primitives.hpp"

#include <doctest/doctest.h>

#include <array>
#include <string>

namespace bech32 = store::age::bech32;

TEST_CASE("age bech32 decodes the BIP 173 valid strings")
{
  for (const char* valid : {
         "A12UEL5L",
         "a12uel5l",
         "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
         "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
         "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
         "?1ezyfcl",
       }) {
    CAPTURE(valid);
    CHECK(bech32::decode(valid).has_value());
  }
  const auto decoded = bech32::decode("A12UEL5L");
  REQUIRE(decoded);
  CHECK(decoded->hrp == "A"); // kept as written: age compares HRPs case-sensitively
  CHECK(decoded->data.empty());
}

TEST_CASE("age bech32 rejects checksum, case, charset and separator errors")
{
  for (const char* invalid : {
         " 1nwldj5",       // HRP character out of range
         "\x7f"
         "1axkwrx",        // HRP character out of range
         "pzry9x0s0muk",   // no separator
         "1pzry9x0s0muk",  // empty HRP
         "x1b4n0q5v",      // 'b' is not in the data charset
         "li1dgmt3",       // checksum too short
         "de1lg7wt\xff",   // invalid character
         "A1G7SGD8",       // checksum computed over the uppercase HRP
         "10a06t8",        // empty HRP
         "1qzzfhee",       // empty HRP
         "A12uEL5L",       // mixed case
         "a12uel5m",       // wrong checksum
         "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx",
       }) {
    CAPTURE(invalid);
    CHECK_FALSE(bech32::decode(invalid).has_value());
  }
}

TEST_CASE("age bech32 round-trips bytes and rejects non-zero padding")
{
  for (size_t n : {0, 1, 2, 5, 31, 32, 33, 100}) {
    std::string data(n, '\0');
    store::age::primitives::random_bytes({reinterpret_cast<uint8_t*>(data.data()), data.size()});
    const std::string text = bech32::encode("age", store::age::primitives::bytes_of(data));
    const auto decoded = bech32::decode(text);
    CAPTURE(n);
    REQUIRE(decoded);
    CHECK(decoded->hrp == "age");
    CHECK(decoded->data == data);
  }
  // Checksums valid, padding not: every byte string has one encoding only.
  CHECK(bech32::decode("age1qqpexly5").has_value()); // groups 0,0: one zero byte, zero padding
  CHECK_FALSE(bech32::decode("age1qpu0j2ex"));       // groups 0,1: padding bits not zero
  CHECK_FALSE(bech32::decode("age1rr7yzwk"));        // one group: 5 bits of padding
}

TEST_CASE("age bech32 encodes the spec's example recipient")
{
  // X25519(0x42 * 32, basepoint), from c2sp.org/age.
  const auto decoded = bech32::decode("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj");
  REQUIRE(decoded);
  CHECK(decoded->data.size() == 32);
  CHECK(bech32::encode("age", store::age::primitives::bytes_of(decoded->data))
        == "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj");
}
