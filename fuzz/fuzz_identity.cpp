// store::age::parse_identity_file (identity.age) and X25519Recipient::parse
// (age1... keys).
// Properties: failures are Error(key); an identity that parses is written
// back (format_identity_file) as a file that parses to the same key; a
// recipient that parses encodes to a string that parses to the same key.
#include "fuzz/fuzz.hpp"
#include "store/age/age.hpp"

#include <chrono>

namespace age = store::age;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const auto text = fuzz::as_text(data, size);
  try {
    const auto identities = age::parse_identity_file(text);
    fuzz::check(!identities.empty(), "a parsed identity file holds a key");
    for (const auto& id : identities) {
      const auto file = age::format_identity_file(id, util::TimePoint{std::chrono::seconds{1'700'000'000}});
      const auto back = age::parse_identity_file(file.view());
      fuzz::check(back.size() == 1 && back[0].recipient() == id.recipient(),
                  "format_identity_file round-trips through parse_identity_file");
    }
  } catch (const age::Error& e) {
    fuzz::check(e.kind() == age::ErrorKind::key, "parse_identity_file fails with a key failure");
  }
  try {
    const auto recipient = age::X25519Recipient::parse(text);
    fuzz::check(age::X25519Recipient::parse(recipient.encode()) == recipient, "recipient encode round-trips");
  } catch (const age::Error& e) {
    fuzz::check(e.kind() == age::ErrorKind::key, "X25519Recipient::parse fails with a key failure");
  }
  return 0;
}
