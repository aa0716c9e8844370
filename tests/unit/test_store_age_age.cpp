#include "store/age/age.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace age = store::age;

namespace {

// From c2sp.org/age: the identity is 0x42 repeated, the recipient its public key.
constexpr std::string_view k_spec_identity =
  "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
constexpr std::string_view k_spec_recipient = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

// Small work factor: these tests check the format, not the cost.
constexpr int k_test_log_n = 10;

template<typename F>
std::optional<age::ErrorKind> error_kind(F&& f)
{
  try {
    f();
  } catch (const age::Error& e) {
    return e.kind();
  }
  return std::nullopt;
}

} // namespace

TEST_CASE("age keys parse and encode like age-keygen")
{
  const auto id = age::X25519Identity::parse(k_spec_identity);
  CHECK(id.encode().view() == k_spec_identity);
  CHECK(id.recipient().encode() == k_spec_recipient);
  CHECK(age::X25519Recipient::parse(k_spec_recipient) == id.recipient());

  const auto generated = age::X25519Identity::generate();
  const auto encoded = generated.encode();
  CHECK(encoded.view().starts_with("AGE-SECRET-KEY-1"));
  CHECK(age::X25519Identity::parse(encoded.view()).recipient() == generated.recipient());
  const auto copy = generated; // a second guarded buffer
  CHECK(copy.encode().view() == encoded.view());

  std::string lower(k_spec_identity);
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::string upper(k_spec_recipient);
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  const std::string bad_identities[] = {lower, std::string(k_spec_recipient), "AGE-SECRET-KEY-1", ""};
  for (const std::string& bad : bad_identities) {
    CAPTURE(bad);
    CHECK(error_kind([&] { age::X25519Identity::parse(bad); }) == age::ErrorKind::key);
  }
  const std::string bad_recipients[] = {upper, std::string(k_spec_identity), "age1qqpexly5", "age1"};
  for (const std::string& bad : bad_recipients) {
    CAPTURE(bad);
    CHECK(error_kind([&] { age::X25519Recipient::parse(bad); }) == age::ErrorKind::key);
  }
}

TEST_CASE("age identity files: comments, blank lines, CRLF, no final newline")
{
  const auto a = age::X25519Identity::generate();
  const auto b = age::X25519Identity::generate();
  const std::string a_key(a.encode().view());
  const std::string b_key(b.encode().view());

  CHECK(age::parse_identity_file(a_key).size() == 1); // bare key, no newline
  const auto ids = age::parse_identity_file("# created: x\n\n# public key: y\n" + a_key + "\n\n" + b_key);
  REQUIRE(ids.size() == 2);
  CHECK(ids[0].recipient() == a.recipient());
  CHECK(ids[1].recipient() == b.recipient());
  // age reads lines with Go's bufio.Scanner, which drops a CR before LF; so do we.
  CHECK(age::parse_identity_file("# comment\r\n" + a_key + "\r\n").size() == 1);

  CHECK(error_kind([] { age::parse_identity_file(""); }) == age::ErrorKind::key);
  CHECK(error_kind([] { age::parse_identity_file("# only a comment\n\n"); }) == age::ErrorKind::key);
  const std::string broken = a_key.substr(0, a_key.size() - 1) + (a_key.back() == 'Q' ? "P" : "Q");
  try {
    age::parse_identity_file("# header\n\n" + broken + "\n");
    FAIL("expected an error");
  } catch (const age::Error& e) {
    CHECK(e.kind() == age::ErrorKind::key);
    CHECK(std::string(e.what()).find("line 3") != std::string::npos);
    CHECK(std::string(e.what()).find(broken.substr(16, 10)) == std::string::npos); // never echo the key
  }
  CHECK(error_kind([&] { age::parse_identity_file(" " + a_key); }) == age::ErrorKind::key);
  CHECK(error_kind([&] { age::parse_identity_file(a_key + "\r\r\n"); }) == age::ErrorKind::key);
}

TEST_CASE("age format_identity_file writes what parse_identity_file and age read")
{
  const auto id = age::X25519Identity::parse(k_spec_identity);
  const auto file = age::format_identity_file(id, util::TimePoint{std::chrono::seconds{1136214245}});
  CHECK(file.view()
        == "# created: 2006-01-02T15:04:05Z\n# public key: " + std::string(k_spec_recipient) + "\n"
             + std::string(k_spec_identity) + "\n");
  CHECK(age::parse_identity_file(file.view())[0].recipient() == id.recipient());
}

TEST_CASE("age X25519 encrypt and decrypt round-trip")
{
  const auto alice = age::X25519Identity::generate();
  const auto bob = age::X25519Identity::generate();
  const auto eve = age::X25519Identity::generate();
  for (size_t n : {size_t{0}, size_t{1}, size_t{65536}, size_t{65537}, size_t{200000}}) {
    CAPTURE(n);
    std::string plaintext(n, 'p');
    const std::string file = age::encrypt({alice.recipient(), bob.recipient()}, plaintext);
    CHECK(file.starts_with("age-encryption.org/v1\n-> X25519 "));
    CHECK(age::decrypt(file, {alice}).view() == plaintext);
    CHECK(age::decrypt(file, {eve, bob}).view() == plaintext);
    CHECK(age::decrypt(age::armor(file), {bob}).view() == plaintext);
    CHECK_FALSE(age::is_encrypted_with_passphrase(file));
    CHECK(error_kind([&] { age::decrypt(file, {eve}); }) == age::ErrorKind::no_match);
    CHECK(error_kind([&] { age::decrypt(file, {}); }) == age::ErrorKind::no_match);
  }
  CHECK_THROWS_AS(age::encrypt({}, "x"), std::invalid_argument);
}

TEST_CASE("age passphrase encrypt and decrypt round-trip")
{
  const std::string plaintext = "the secret value";
  const std::string file = age::encrypt_with_passphrase("correct horse", plaintext, k_test_log_n);
  CHECK(file.starts_with("age-encryption.org/v1\n-> scrypt "));
  CHECK(age::is_encrypted_with_passphrase(file));
  CHECK(age::is_encrypted_with_passphrase(age::armor(file)));
  CHECK(age::decrypt_with_passphrase(file, "correct horse").view() == plaintext);
  CHECK(age::decrypt_with_passphrase(age::armor(file), "correct horse").view() == plaintext);
  CHECK(error_kind([&] { age::decrypt_with_passphrase(file, "wrong"); }) == age::ErrorKind::no_match);
  // The reader's work-factor cap is a header failure, before scrypt runs.
  CHECK(error_kind([&] { age::decrypt_with_passphrase(file, "correct horse", k_test_log_n - 1); })
        == age::ErrorKind::header);
  // An X25519 identity does not open a passphrase file.
  CHECK(error_kind([&] { age::decrypt(file, {age::X25519Identity::generate()}); }) == age::ErrorKind::no_match);
  CHECK_THROWS_AS(age::encrypt_with_passphrase("pw", "x", 23), std::invalid_argument);
  CHECK_THROWS_AS(age::encrypt_with_passphrase("pw", "x", 0), std::invalid_argument);
}

TEST_CASE("age decrypt_to tries identities, then passphrases, and releases authenticated chunks")
{
  const auto id = age::X25519Identity::generate();
  const std::string plaintext(3 * 65536, 'z');
  std::string file = age::encrypt({id.recipient()}, plaintext);

  age::Keys keys;
  keys.identities.push_back(age::X25519Identity::generate());
  keys.identities.push_back(id);
  keys.passphrases.push_back("unused");
  std::string out;
  age::decrypt_to(file, keys, out);
  CHECK(out == plaintext);

  // Corrupt the last byte: the first chunks were authenticated and released,
  // and the call still fails.
  file.back() = static_cast<char>(file.back() ^ 1);
  out.clear();
  CHECK(error_kind([&] { age::decrypt_to(file, keys, out); }) == age::ErrorKind::payload);
  CHECK(out == plaintext.substr(0, 2 * 65536));
  CHECK(error_kind([&] { age::decrypt(file, {id}); }) == age::ErrorKind::payload);
}

TEST_CASE("age detects header tampering with the MAC")
{
  const auto id = age::X25519Identity::generate();
  const std::string file = age::encrypt({id.recipient()}, "x");
  // Appending a grease stanza keeps the header well formed but changes what the MAC covers.
  const size_t mac = file.find("\n--- ");
  const std::string tampered = file.substr(0, mac + 1) + "-> grease\n\n" + file.substr(mac + 1);
  CHECK(error_kind([&] { age::decrypt(tampered, {id}); }) == age::ErrorKind::hmac);
  CHECK(error_kind([&] { age::decrypt(file.substr(0, mac), {id}); }) == age::ErrorKind::header);
  CHECK(error_kind([&] { age::decrypt("", {id}); }) == age::ErrorKind::header);
  CHECK(error_kind([&] { age::decrypt("-----BEGIN AGE ENCRYPTED FILE-----\nx\n", {id}); }) == age::ErrorKind::armor);
}

TEST_CASE("age error kinds have the test kit's names")
{
  CHECK(std::string(age::to_string(age::ErrorKind::no_match)) == "no match");
  CHECK(std::string(age::to_string(age::ErrorKind::hmac)) == "HMAC failure");
  CHECK(std::string(age::to_string(age::ErrorKind::header)) == "header failure");
  CHECK(std::string(age::to_string(age::ErrorKind::payload)) == "payload failure");
  CHECK(std::string(age::to_string(age::ErrorKind::armor)) == "armor failure");
  CHECK(std::string(age::to_string(age::ErrorKind::key)) == "key failure");
}
