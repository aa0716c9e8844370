#pragma once
// The text forms a secret value takes when a program writes it out through a
// common encoder, and their removal from text. Response scrubbing (proxy/),
// a hook's stderr (rotation/) and, later, `secrets scan` all look for the
// same list, so it is made here once. Pure; any thread.
//
// Forms of a value V (duplicates and forms equal to an earlier one dropped):
//   raw            V itself
//   percent        RFC 3986 (unreserved kept), %XX upper and lower case, and
//                  the form encoding (space as '+')
//   base64         standard alphabet, at the three alignments: V starting at
//                  byte 0, 1 or 2 of a longer base64'd stream changes every
//                  character, so each alignment contributes the characters
//                  that depend on V's bytes only (no padding). Alignment 0 of
//                  V alone is what HTTP Basic sends, so it covers that form.
//   base64url      the same with the URL-safe alphabet
//   hex            lower and upper case
//   json_escaped   what JSON encoders write for V inside a string: short
//                  escapes (\" \\ \/ \n ...), and every byte as \u00xx
//                  (lower and upper case hex), as ensure_ascii or
//                  HTML-safe encoders do
// What no list can catch: an upstream that transforms the value in a way we
// cannot predict (reversed, split, encrypted). The README says so.

#include <string>
#include <string_view>
#include <vector>

namespace util {

struct EncodedForm
{
  const char* encoding; // raw, percent, base64, base64url, hex, json_escaped
  std::string text;
};

// Shorter values make too many false matches to be worth a form of their own:
// for those only the raw form is returned.
inline constexpr size_t k_min_encoded_value = 8;

std::vector<EncodedForm> encoded_forms(std::string_view value);

// Base64 of `data` (RFC 4648), with '=' padding or without.
std::string base64_encode(std::string_view data, bool url_safe, bool pad);
std::string hex_encode(std::string_view data, bool upper);
// RFC 3986: unreserved characters stay, everything else is %XX.
std::string percent_encode(std::string_view text, bool upper = true);

// Replaces every form of every value in `text` by `mark`, longest form first,
// so that no part of a longer form is left behind. Values shorter than
// k_min_encoded_value are still replaced raw; empty values are skipped.
std::string redact_forms(std::string_view text, const std::vector<std::string_view>& values, std::string_view mark);

} // namespace util
