#include "store/age/format.hpp"

#include "store/age/error.hpp"
#include "store/age/primitives.hpp"

#include <utility>

namespace store::age::format {

namespace {

constexpr size_t k_mac_size = primitives::k_mac_size;

[[noreturn]] void header_error(const std::string& what)
{
  throw Error(ErrorKind::header, "malformed age header: " + what);
}

[[noreturn]] void armor_error(const std::string& what)
{
  throw Error(ErrorKind::armor, "malformed age armor: " + what);
}

// Consumes one LF-terminated line from `rest`, without its LF.
bool next_line(std::string_view& rest, std::string_view& line)
{
  const size_t eol = rest.find('\n');
  if (eol == std::string_view::npos) {
    return false;
  }
  line = rest.substr(0, eol);
  rest.remove_prefix(eol + 1);
  return true;
}

// ABNF "argument = 1*VCHAR": printable ASCII, no spaces, not empty.
bool is_valid_argument(std::string_view arg)
{
  if (arg.empty()) {
    return false;
  }
  for (char c : arg) {
    if (c < 33 || c > 126) {
      return false;
    }
  }
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view line)
{
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t space = line.find(' ', start);
    parts.push_back(line.substr(start, space - start));
    if (space == std::string_view::npos) {
      return parts;
    }
    start = space + 1;
  }
}

Stanza parse_stanza(std::string_view& rest)
{
  std::string_view line;
  if (!next_line(rest, line)) {
    header_error("unexpected end of header");
  }
  // "-> " argument *(SP argument): splitting on single spaces turns doubled,
  // leading or trailing spaces into empty arguments, which are invalid.
  const auto parts = split_spaces(line);
  if (parts[0] != k_stanza_prefix) {
    header_error("expected a stanza or the MAC line");
  }
  if (parts.size() < 2) {
    header_error("stanza without arguments");
  }
  Stanza stanza;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!is_valid_argument(parts[i])) {
      header_error("invalid stanza argument");
    }
    if (i == 1) {
      stanza.type = parts[i];
    } else {
      stanza.args.emplace_back(parts[i]);
    }
  }
  // Body: full 64-column lines, then one shorter (possibly empty) final line.
  while (true) {
    if (!next_line(rest, line)) {
      header_error("unexpected end of stanza body");
    }
    if (line.size() > k_columns_per_line) {
      header_error("stanza body line longer than 64 columns");
    }
    const auto decoded = primitives::base64_decode(line);
    if (!decoded) {
      // Most often a stanza or MAC line where the final short line belongs.
      header_error("stanza body line is not canonical unpadded base64");
    }
    stanza.body += *decoded;
    if (line.size() < k_columns_per_line) {
      return stanza;
    }
  }
}

} // namespace

Header parse(std::string_view file)
{
  std::string_view rest = file;
  std::string_view line;
  if (!next_line(rest, line)) {
    header_error(file.empty() ? "file is empty" : "missing version line");
  }
  if (line != k_version_line) {
    header_error("unsupported version line (want age-encryption.org/v1)");
  }

  Header header;
  while (!rest.starts_with(k_mac_prefix)) {
    header.stanzas.push_back(parse_stanza(rest));
  }
  if (header.stanzas.empty()) {
    header_error("no recipient stanzas"); // ABNF: 1*stanza
  }

  // "--- " 43base64char LF; the MAC covers everything before the space.
  const size_t mac_line_start = file.size() - rest.size();
  header.mac_input = file.substr(0, mac_line_start + k_mac_prefix.size());
  if (!next_line(rest, line) || !line.starts_with("--- ")) {
    header_error("malformed MAC line");
  }
  const auto mac = primitives::base64_decode(line.substr(4));
  if (!mac || mac->size() != k_mac_size) {
    header_error("malformed MAC line");
  }
  header.mac = *mac;

  if (rest.size() < k_payload_nonce_size) {
    header_error("missing or short payload nonce");
  }
  header.nonce = rest.substr(0, k_payload_nonce_size);
  header.payload = rest.substr(k_payload_nonce_size);
  return header;
}

std::string write_header_without_mac(const std::vector<Stanza>& stanzas)
{
  std::string out(k_version_line);
  out += '\n';
  for (const auto& stanza : stanzas) {
    out += k_stanza_prefix;
    out += ' ';
    out += stanza.type;
    for (const auto& arg : stanza.args) {
      out += ' ';
      out += arg;
    }
    out += '\n';
    const std::string body = primitives::base64_encode(primitives::bytes_of(stanza.body));
    for (size_t i = 0; i < body.size(); i += k_columns_per_line) {
      out += body.substr(i, k_columns_per_line);
      out += '\n';
    }
    // The body ends at the first short line, so a body that fills its last
    // line (or is empty) needs an empty one.
    if (body.size() % k_columns_per_line == 0) {
      out += '\n';
    }
  }
  out += k_mac_prefix;
  return out;
}

void append_mac(std::string& header, std::span<const uint8_t> mac)
{
  header += ' ';
  header += primitives::base64_encode(mac);
  header += '\n';
}

namespace {

// The whitespace Go's bytes.TrimSpace removes, restricted to ASCII.
bool is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim_spaces(std::string_view s)
{
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

} // namespace

bool is_armored(std::string_view file)
{
  while (!file.empty() && is_space(file.front())) {
    file.remove_prefix(1);
  }
  return file.starts_with(k_armor_begin);
}

std::string armor(std::string_view binary)
{
  const std::string encoded = primitives::base64_encode_padded(primitives::bytes_of(binary));
  std::string out(k_armor_begin);
  out += '\n';
  for (size_t i = 0; i < encoded.size(); i += k_columns_per_line) {
    out += encoded.substr(i, k_columns_per_line);
    out += '\n';
  }
  out += k_armor_end;
  out += '\n';
  return out;
}

std::string dearmor(std::string_view text)
{
  std::string_view rest = trim_spaces(text);
  std::vector<std::string_view> lines;
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    lines.push_back(line);
  }
  if (lines.empty() || lines.front() != k_armor_begin) {
    armor_error("missing BEGIN AGE ENCRYPTED FILE line");
  }
  if (lines.size() < 2 || lines.back() != k_armor_end) {
    armor_error("missing END AGE ENCRYPTED FILE line, or data after it");
  }
  // RFC 7468 strict form: every base64 line has exactly 64 columns except the
  // last, which has 1 to 64. No headers, no empty lines, no inner whitespace.
  std::string encoded;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const bool is_last = i + 2 == lines.size();
    if (line.empty()) {
      armor_error("empty line");
    }
    if (line.size() > k_columns_per_line) {
      armor_error("line longer than 64 columns");
    }
    if (!is_last && line.size() != k_columns_per_line) {
      armor_error("short line before the last one");
    }
    encoded += line;
  }
  auto binary = primitives::base64_decode_padded(encoded);
  if (!binary) {
    armor_error("invalid or non-canonical base64");
  }
  return std::move(*binary);
}

} // namespace store::age::format
