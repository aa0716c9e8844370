#include "store/age/bech32.hpp"

#include "store/age/primitives.hpp"

#include <array>

namespace store::age::bech32 {

namespace {

constexpr std::string_view k_charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
constexpr size_t k_checksum_size = 6;

uint32_t polymod(std::string_view hrp, std::string_view values)
{
  constexpr std::array<uint32_t, 5> k_generator = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t chk = 1;
  auto step = [&](uint8_t v) {
    const uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (size_t i = 0; i < k_generator.size(); ++i) {
      if (((top >> i) & 1) != 0) {
        chk ^= k_generator[i];
      }
    }
  };
  // The HRP is expanded as its high bits, a zero, then its low bits.
  for (char c : hrp) {
    step(static_cast<uint8_t>(static_cast<uint8_t>(c) >> 5));
  }
  step(0);
  for (char c : hrp) {
    step(static_cast<uint8_t>(c & 31));
  }
  for (char v : values) {
    step(static_cast<uint8_t>(v));
  }
  return chk;
}

// Wipes a scratch string on every return path: the 5-bit groups of a secret
// key are as secret as the key.
struct WipeOnExit
{
  std::string& s;
  ~WipeOnExit() { primitives::wipe(s); }
};

char to_lower(char c)
{
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

std::string encode(std::string_view hrp, std::span<const uint8_t> data)
{
  // 8-bit groups to 5-bit groups, zero-padding the last one.
  std::string values;
  const WipeOnExit wipe_values{values};
  values.reserve((data.size() * 8 + 4) / 5 + k_checksum_size);
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t byte : data) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      values.push_back(static_cast<char>((acc >> bits) & 31));
    }
  }
  if (bits > 0) {
    values.push_back(static_cast<char>((acc << (5 - bits)) & 31));
  }

  const size_t payload = values.size();
  values.append(k_checksum_size, '\0');
  const uint32_t mod = polymod(hrp, values) ^ 1;
  for (size_t i = 0; i < k_checksum_size; ++i) {
    values[payload + i] = static_cast<char>((mod >> (5 * (5 - i))) & 31);
  }

  std::string out;
  out.reserve(hrp.size() + 1 + values.size());
  out.append(hrp);
  out.push_back('1');
  for (char v : values) {
    out.push_back(k_charset[static_cast<size_t>(v)]);
  }
  return out;
}

std::optional<Decoded> decode(std::string_view text)
{
  bool lower = false;
  bool upper = false;
  for (char c : text) {
    if (c < 33 || c > 126) {
      return std::nullopt;
    }
    lower = lower || (c >= 'a' && c <= 'z');
    upper = upper || (c >= 'A' && c <= 'Z');
  }
  if (lower && upper) {
    return std::nullopt;
  }
  const size_t sep = text.rfind('1');
  if (sep == std::string_view::npos || sep == 0 || text.size() - sep - 1 < k_checksum_size) {
    return std::nullopt;
  }

  Decoded out;
  out.hrp = text.substr(0, sep);
  std::string lower_hrp;
  for (char c : out.hrp) {
    lower_hrp.push_back(to_lower(c));
  }
  std::string values;
  const WipeOnExit wipe_values{values};
  values.reserve(text.size() - sep - 1);
  for (char c : text.substr(sep + 1)) {
    const size_t v = k_charset.find(to_lower(c));
    if (v == std::string_view::npos) {
      return std::nullopt;
    }
    values.push_back(static_cast<char>(v));
  }
  if (polymod(lower_hrp, values) != 1) {
    return std::nullopt;
  }

  // 5-bit groups back to bytes; the leftover must be under 5 bits and zero,
  // so every byte string has exactly one encoding.
  out.data.reserve((values.size() - k_checksum_size) * 5 / 8);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i + k_checksum_size < values.size(); ++i) {
    acc = ((acc << 5) | static_cast<uint8_t>(values[i])) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.data.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 5 || (acc & ((1U << bits) - 1)) != 0) {
    primitives::wipe(out.data);
    return std::nullopt;
  }
  return out;
}

} // namespace store::age::bech32
