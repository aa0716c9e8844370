#pragma once
// Bech32 (BIP 173) as age uses it: no length limit on the data part, all
// uppercase or all lowercase, checksum computed over the lowercase form.
// Keys are encoded with it, so callers wipe the strings they get back; the
// outputs are reserved at their final size so no stale copy is left behind
// by a reallocation.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace store::age::bech32 {

// Lowercase encoding of `data` under `hrp` (which must be lowercase).
std::string encode(std::string_view hrp, std::span<const uint8_t> data);

struct Decoded
{
  std::string hrp; // as written: age compares it case-sensitively
  std::string data;
};

// nullopt on mixed case, a bad character, a misplaced separator, a bad
// checksum or non-zero padding bits.
std::optional<Decoded> decode(std::string_view text);

} // namespace store::age::bech32
