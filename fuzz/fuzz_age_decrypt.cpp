// The age header parser (store::age::format::parse), the armor, and full
// decryption (store::age::decrypt_to) with a fixed identity and passphrase:
// the ones of the c2sp.org/age test kit, whose files are the seed corpus.
// Properties:
// - a header that parses re-encodes to exactly its own bytes (one encoding
//   per header: write_header_without_mac(parse(f).stanzas) == mac_input);
// - armor that dearmors re-armors and dearmors to the same bytes;
// - decryption fails only with store::age::Error; anything else escapes and
//   aborts (libFuzzer reports an uncaught exception).
#include "fuzz/fuzz.hpp"
#include "store/age/age.hpp"
#include "store/age/format.hpp"

#include <string>

namespace age = store::age;

namespace {

const age::Keys& keys()
{
  static const age::Keys k = [] {
    age::Keys out;
    out.identities.push_back(
      age::X25519Identity::parse("AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"));
    out.passphrases.push_back("password");
    out.max_log_n = 10; // the test kit's work factor; higher ones are a header failure, fast
    return out;
  }();
  return k;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  const auto file = fuzz::as_text(data, size);
  std::string binary;
  try {
    binary = age::format::is_armored(file) ? age::format::dearmor(file) : std::string(file);
    if (age::format::is_armored(file)) {
      fuzz::check(age::format::dearmor(age::format::armor(binary)) == binary, "armor round-trips");
    }
  } catch (const age::Error& e) {
    fuzz::check(e.kind() == age::ErrorKind::armor, "dearmor fails with an armor failure");
    return 0;
  }
  try {
    const auto header = age::format::parse(binary);
    fuzz::check(age::format::write_header_without_mac(header.stanzas) == header.mac_input,
                "a parsed header re-encodes to its own bytes");
    fuzz::check(header.mac.size() == 32 && header.nonce.size() == age::format::k_payload_nonce_size,
                "a parsed header has a 32-byte MAC and a 16-byte nonce");
  } catch (const age::Error& e) {
    fuzz::check(e.kind() == age::ErrorKind::header, "format::parse fails with a header failure");
  }
  std::string out;
  try {
    age::decrypt_to(file, keys(), out);
  } catch (const age::Error&) {
    // Any failure class: no_match, hmac, header, payload or armor.
  }
  age::is_encrypted_with_passphrase(file);
  return 0;
}
