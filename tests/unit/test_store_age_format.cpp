#include "store/age/error.hpp"
#include "store/age/format.hpp"
#include "store/age/primitives.hpp"

#include <doctest/doctest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace age = store::age;
namespace format = store::age::format;

namespace {

const std::string k_mac_line = "--- " + std::string(42, 'A') + "A\n"; // 43 zero-valued chars: 32 zero bytes
const std::string k_nonce(16, 'n');

std::optional<age::ErrorKind> parse_error(const std::string& file)
{
  try {
    format::parse(file);
  } catch (const age::Error& e) {
    return e.kind();
  }
  return std::nullopt;
}

std::string header_with(const std::string& stanzas)
{
  return "age-encryption.org/v1\n" + stanzas + k_mac_line + k_nonce;
}

} // namespace

TEST_CASE("age header round-trips through write and parse")
{
  for (size_t body_size : {0, 1, 32, 47, 48, 49, 96, 100}) {
    CAPTURE(body_size);
    std::vector<format::Stanza> stanzas = {
      {"X25519", {"abc"}, std::string(body_size, 'b')},
      {"example.com/grease", {"x", "y"}, ""},
    };
    std::string file = format::write_header_without_mac(stanzas);
    CHECK(file.ends_with("\n---"));
    const std::array<uint8_t, 32> mac{};
    format::append_mac(file, mac);
    file += k_nonce + "payload";
    const auto header = format::parse(file);
    REQUIRE(header.stanzas.size() == 2);
    CHECK(header.stanzas[0].type == "X25519");
    CHECK(header.stanzas[0].args == std::vector<std::string>{"abc"});
    CHECK(header.stanzas[0].body == std::string(body_size, 'b'));
    CHECK(header.stanzas[1].args.size() == 2);
    CHECK(header.mac == std::string(32, '\0'));
    CHECK(header.mac_input == file.substr(0, file.find("--- ") + 3));
    CHECK(header.nonce == k_nonce);
    CHECK(header.payload == "payload");
  }
}

TEST_CASE("age header parsing rejects non-canonical headers")
{
  const std::string full_line(64, 'A');
  CHECK_FALSE(parse_error(header_with("-> X25519 abc\nAAAA\n")));
  CHECK_FALSE(parse_error(header_with("-> X25519 abc\n" + full_line + "\n\n")));
  for (const std::string& bad : {
         std::string(""),
         std::string("age-encryption.org/v1"),
         std::string("age-encryption.org/v2\n-> a\n\n") + k_mac_line + k_nonce,
         std::string("age-encryption.org/v1\r\n-> a\n\n") + k_mac_line + k_nonce,
         header_with(""),                                // no stanza
         header_with("-> X25519 abc\n"),                 // no body line
         header_with("-> X25519 abc\n" + full_line + "\n"), // full last line without an empty one
         header_with("->  X25519\n\n"),                  // empty argument
         header_with("-> X25519 \n\n"),                  // trailing space
         header_with("->\n\n"),                          // no arguments
         header_with("-> \n\n"),                         // empty type
         header_with("->X25519\n\n"),                    // no space after the arrow
         header_with("-> X25519\r\n\n"),                 // CR in an argument
         header_with("-> X25519\nAAAA\r\n"),             // CR in the body
         header_with("-> X25519\nAA==\n"),               // padded body
         header_with("-> X25519\nAB\n"),                 // non-canonical body
         header_with("-> X25519\n" + full_line + "AAAA\n"), // 68 columns
         header_with("-> X25519\nAAAA\nAAAA\n"),         // two short lines
         header_with("-> X\xc3\xa9\n\n"),                // non-ASCII argument
       }) {
    CAPTURE(bad);
    CHECK(parse_error(bad) == age::ErrorKind::header);
  }
  const std::string good = "age-encryption.org/v1\n-> a\n\n";
  CHECK(parse_error(good + "---  " + std::string(43, 'A') + "\n" + k_nonce) == age::ErrorKind::header);
  CHECK(parse_error(good + "---" + std::string(43, 'A') + "\n" + k_nonce) == age::ErrorKind::header);
  CHECK(parse_error(good + "--- " + std::string(43, 'A') + " \n" + k_nonce) == age::ErrorKind::header);
  CHECK(parse_error(good + "--- " + std::string(42, 'A') + "\n" + k_nonce) == age::ErrorKind::header);
  CHECK(parse_error(good + "--- " + std::string(42, 'A') + "B\n" + k_nonce) == age::ErrorKind::header);
  CHECK(parse_error(good + k_mac_line + k_nonce.substr(1)) == age::ErrorKind::header);
  CHECK_FALSE(parse_error(good + k_mac_line + k_nonce));
}

TEST_CASE("age armor round-trips and tolerates only outer whitespace and CRLF")
{
  for (size_t n : {0, 1, 47, 48, 49, 100, 1000}) {
    CAPTURE(n);
    std::string binary(n, '\0');
    store::age::primitives::random_bytes({reinterpret_cast<uint8_t*>(binary.data()), binary.size()});
    const std::string armored = format::armor(binary);
    CHECK(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
    CHECK(armored.ends_with("\n-----END AGE ENCRYPTED FILE-----\n"));
    CHECK(format::is_armored(armored));
    CHECK(format::dearmor(armored) == binary);
    CHECK(format::dearmor(" \r\n\t" + armored + "\n \n") == binary);
    std::string crlf;
    for (char c : armored) {
      crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    }
    CHECK(format::dearmor(crlf) == binary);
  }
  CHECK_FALSE(format::is_armored("age-encryption.org/v1\n"));
}

TEST_CASE("age armor rejects anything but the strict PEM form")
{
  const std::string binary(100, 'x');
  const std::string armored = format::armor(binary);
  const std::string begin = "-----BEGIN AGE ENCRYPTED FILE-----\n";
  const std::string end = "-----END AGE ENCRYPTED FILE-----\n";
  const std::string body = armored.substr(begin.size(), armored.size() - begin.size() - end.size());
  const std::string line1 = body.substr(0, 65);
  const std::string line2 = body.substr(65);
  for (const std::string& bad : {
         "garbage\n" + armored,
         armored + "garbage\n",
         begin + body,
         begin + "\n" + body + end,
         begin + body + "\n" + end,
         begin + line1.substr(0, 32) + "\n" + line1.substr(32) + line2 + end,
         begin + " " + body + end,
         begin + line1.substr(0, 64) + " \n" + line2 + end,
         begin + "Header: x\n\n" + body + end,
         std::string("-----BEGIN age ENCRYPTED FILE-----\n") + body + end,
         begin + line1 + line2.substr(0, line2.size() - 3) + "\n" + end, // missing padding
       }) {
    CAPTURE(bad);
    CHECK_THROWS_AS(format::dearmor(bad), age::Error);
    try {
      format::dearmor(bad);
    } catch (const age::Error& e) {
      CHECK(e.kind() == age::ErrorKind::armor);
    }
  }
}
