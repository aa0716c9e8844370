#include "proxy/rewrite.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "util/file.hpp"

namespace proxy {

namespace {

bool is_lower_hex(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool iequals(std::string_view a, std::string_view b)
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

template <typename Keep>
std::string filter_query(std::string_view query, Keep keep)
{
  std::string out;
  size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    const auto end = std::min(query.find('&', start), query.size());
    const auto param = query.substr(start, end - start);
    if (!param.empty() && keep(param)) {
      if (!out.empty()) {
        out += '&';
      }
      out += param;
    }
    start = end + 1;
  }
  return out;
}

} // namespace

std::vector<std::string> find_placeholders(std::string_view text)
{
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find(k_placeholder_prefix, pos)) != std::string_view::npos) {
    const bool starts_word = pos == 0 || !std::isalnum(static_cast<unsigned char>(text[pos - 1]));
    const auto end = pos + k_placeholder_size;
    const bool ends_word = end == text.size() || (end < text.size() && !std::isalnum(static_cast<unsigned char>(text[end])));
    if (starts_word && ends_word
        && std::all_of(text.begin() + pos + k_placeholder_prefix.size(), text.begin() + end, is_lower_hex)) {
      std::string token(text.substr(pos, k_placeholder_size));
      if (std::find(out.begin(), out.end(), token) == out.end()) {
        out.push_back(std::move(token));
      }
      pos = end;
    } else {
      pos += k_placeholder_prefix.size();
    }
  }
  return out;
}

bool is_hop_by_hop(std::string_view name)
{
  static constexpr std::array<std::string_view, 11> k_names = {
    "connection", "keep-alive",     "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade",         "content-length",      "expect"};
  return std::any_of(k_names.begin(), k_names.end(), [&](std::string_view n) { return iequals(n, name); });
}

std::string drop_query_params_containing(std::string_view query, std::string_view needle)
{
  return filter_query(query, [&](std::string_view param) { return param.find(needle) == std::string_view::npos; });
}

std::string drop_query_param(std::string_view query, std::string_view name)
{
  return filter_query(query, [&](std::string_view param) { return param.substr(0, param.find('=')) != name; });
}

Replacer::Replacer(std::string needle, std::string replacement)
  : m_needle(std::move(needle)), m_replacement(std::move(replacement)), m_fail(m_needle.size(), 0)
{
  // m_fail[i]: length of the longest proper prefix of needle[0..i] that is also its suffix.
  for (size_t i = 1, k = 0; i < m_needle.size(); ++i) {
    while (k > 0 && m_needle[i] != m_needle[k]) {
      k = m_fail[k - 1];
    }
    if (m_needle[i] == m_needle[k]) {
      ++k;
    }
    m_fail[i] = k;
  }
}

Replacer::~Replacer()
{
  // Either string may be the secret.
  util::wipe(m_needle);
  util::wipe(m_replacement);
}

size_t Replacer::feed(std::string_view in, std::string& out)
{
  size_t replaced = 0;
  if (m_needle.empty()) {
    out.append(in);
    return 0;
  }
  size_t i = 0;
  while (i < in.size()) {
    if (m_state == 0) {
      // Fast path: copy up to the next byte that could start a match.
      const void* hit = std::memchr(in.data() + i, m_needle[0], in.size() - i);
      const size_t next = hit ? static_cast<size_t>(static_cast<const char*>(hit) - in.data()) : in.size();
      out.append(in.substr(i, next - i));
      i = next;
      if (i == in.size()) {
        break;
      }
    }
    const char c = in[i];
    if (m_needle[m_state] == c) {
      ++m_state;
      ++i;
      if (m_state == m_needle.size()) {
        out += m_replacement;
        ++replaced;
        m_state = 0;
      }
    } else if (m_state == 0) {
      out += c;
      ++i;
    } else {
      // The held bytes no longer all belong to a match: release those that
      // cannot, and retry `c` against the shorter match.
      const size_t keep = m_fail[m_state - 1];
      out.append(m_needle, 0, m_state - keep);
      m_state = keep;
    }
  }
  return replaced;
}

void Replacer::finish(std::string& out)
{
  out.append(m_needle, 0, m_state);
  m_state = 0;
}

std::string replace_all(std::string_view text, std::string_view needle, std::string_view replacement)
{
  Replacer r{std::string(needle), std::string(replacement)};
  std::string out;
  r.feed(text, out);
  r.finish(out);
  return out;
}

} // namespace proxy
