#include "util/encoding.hpp"

#include "util/file.hpp"

#include <algorithm>

namespace util {

namespace {

constexpr std::string_view k_base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view k_base64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool is_unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
         || c == '~';
}

void append_hex_byte(std::string& out, unsigned char c, bool upper)
{
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  out += digits[c >> 4];
  out += digits[c & 0x0f];
}

// The characters of base64(prefix of `align` zero bytes + value) that depend
// on the value's bytes alone: the first ones also carry the prefix's bits,
// and the last partial one would carry the bits of whatever follows.
std::string base64_core(std::string_view value, size_t align, bool url_safe)
{
  std::string padded(align, '\0');
  padded.append(value);
  const std::string all = base64_encode(padded, url_safe, false);
  const size_t first = (align * 8 + 5) / 6;
  const size_t last = padded.size() * 8 / 6; // characters wholly inside the bytes
  return first < last ? all.substr(first, last - first) : std::string();
}

std::string json_short_escapes(std::string_view value)
{
  std::string out;
  for (const unsigned char c : value) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '/': out += "\\/"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        append_hex_byte(out, c, false);
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  return out;
}

std::string json_unicode_escapes(std::string_view value, bool upper)
{
  std::string out;
  for (const unsigned char c : value) {
    out += "\\u00";
    append_hex_byte(out, c, upper);
  }
  return out;
}

} // namespace

std::string base64_encode(std::string_view data, bool url_safe, bool pad)
{
  const std::string_view alphabet = url_safe ? k_base64url : k_base64;
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8)
                       | static_cast<unsigned char>(data[i + 2]);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  const size_t rest = data.size() - i;
  if (rest > 0) {
    unsigned n = static_cast<unsigned char>(data[i]) << 16;
    if (rest == 2) {
      n |= static_cast<unsigned char>(data[i + 1]) << 8;
    }
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    if (rest == 2) {
      out += alphabet[(n >> 6) & 63];
    }
    if (pad) {
      out.append(3 - rest, '=');
    }
  }
  return out;
}

std::string hex_encode(std::string_view data, bool upper)
{
  std::string out;
  out.reserve(data.size() * 2);
  for (const unsigned char c : data) {
    append_hex_byte(out, c, upper);
  }
  return out;
}

std::string percent_encode(std::string_view text, bool upper)
{
  std::string out;
  for (const unsigned char c : text) {
    if (is_unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      append_hex_byte(out, c, upper);
    }
  }
  return out;
}

std::vector<EncodedForm> encoded_forms(std::string_view value)
{
  std::vector<EncodedForm> forms;
  auto add = [&forms](const char* encoding, std::string text) {
    if (text.empty()) {
      return;
    }
    for (const auto& f : forms) {
      if (f.text == text) {
        return;
      }
    }
    forms.push_back({encoding, std::move(text)});
  };
  add("raw", std::string(value));
  if (value.size() < k_min_encoded_value) {
    return forms;
  }
  add("percent", percent_encode(value, true));
  add("percent", percent_encode(value, false));
  // The form encoding: as percent, but a space is '+'. Built by appending
  // (GCC 12's -Wrestrict misreads an in-place replace here).
  std::string form_encoded;
  for (const char c : value) {
    form_encoded += c == ' ' ? std::string("+") : percent_encode(std::string_view(&c, 1), true);
  }
  add("percent", std::move(form_encoded));
  for (size_t align = 0; align < 3; ++align) {
    add("base64", base64_core(value, align, false));
    add("base64url", base64_core(value, align, true));
  }
  add("hex", hex_encode(value, false));
  add("hex", hex_encode(value, true));
  add("json_escaped", json_short_escapes(value));
  add("json_escaped", json_unicode_escapes(value, false));
  add("json_escaped", json_unicode_escapes(value, true));
  return forms;
}

std::string redact_forms(std::string_view text, const std::vector<std::string_view>& values, std::string_view mark)
{
  std::vector<std::string> needles;
  for (const auto value : values) {
    if (value.empty()) {
      continue;
    }
    for (auto& f : encoded_forms(value)) {
      needles.push_back(std::move(f.text));
    }
  }
  std::sort(needles.begin(), needles.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  // Built piece by piece: replacing in place would leave copies of the
  // value in the buffers it reallocates away from.
  std::string out(text);
  for (auto& needle : needles) {
    std::string next;
    next.reserve(out.size());
    size_t from = 0;
    for (size_t at = 0; (at = out.find(needle, from)) != std::string::npos; from = at + needle.size()) {
      next.append(out, from, at - from);
      next.append(mark);
    }
    next.append(out, from);
    wipe(out);
    out = std::move(next);
    wipe(needle);
  }
  return out;
}

} // namespace util
