#pragma once
// The bytes of an age file around the crypto: the textual header (version
// line, recipient stanzas, MAC line), the payload nonce, and the ASCII armor.
// Parsing is strict so a file has exactly one encoding: anything the ABNF of
// c2sp.org/age does not produce is refused here, before any key is tried.
// Throws store::age::Error(header) or Error(armor). Knows nothing of keys.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace store::age::format {

inline constexpr std::string_view k_version_line = "age-encryption.org/v1";
inline constexpr std::string_view k_stanza_prefix = "->";
inline constexpr std::string_view k_mac_prefix = "---";
inline constexpr size_t k_columns_per_line = 64; // base64 columns of a full body line
inline constexpr size_t k_payload_nonce_size = 16;
inline constexpr std::string_view k_armor_begin = "-----BEGIN AGE ENCRYPTED FILE-----";
inline constexpr std::string_view k_armor_end = "-----END AGE ENCRYPTED FILE-----";

struct Stanza
{
  std::string type;              // the first argument, e.g. "X25519"
  std::vector<std::string> args; // the remaining arguments
  std::string body;              // decoded
};

// Views point into the string given to parse().
struct Header
{
  std::vector<Stanza> stanzas;
  std::string mac;             // 32 bytes
  std::string_view mac_input;  // the header up to and including "---", which the MAC covers
  std::string_view nonce;      // the 16-byte payload nonce
  std::string_view payload;    // the STREAM chunks that follow the nonce
};

// Parses a binary age file up to the payload. A payload shorter than its
// 16-byte nonce is a header failure too: without it there is no payload key.
Header parse(std::string_view file);

// The header text up to and including "---"; the caller computes the MAC
// over it and completes it with append_mac.
std::string write_header_without_mac(const std::vector<Stanza>& stanzas);
void append_mac(std::string& header, std::span<const uint8_t> mac);

// True if, after optional leading whitespace, the text starts with the armor's
// BEGIN line. A binary age file starts with "age-encryption.org/", so the two
// can never be confused.
bool is_armored(std::string_view file);
// PEM with label "AGE ENCRYPTED FILE": padded base64 in 64-column lines, LF.
std::string armor(std::string_view binary);
// Strict inverse of armor(): whitespace is allowed only before BEGIN and after
// END, and lines may end in LF or CRLF; nothing else varies.
std::string dearmor(std::string_view text);

} // namespace store::age::format
