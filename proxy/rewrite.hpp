#pragma once
// The byte-level rewriting the proxy does: finding placeholders in a request,
// dropping what must not go upstream, and replacing one string by another in
// a stream split at arbitrary points (request bodies with --inject body, and
// response scrubbing). Pure; any thread.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace proxy {

inline constexpr std::string_view k_placeholder_prefix = "as_";
inline constexpr size_t k_placeholder_size = 35; // "as_" + 32 lowercase hex

// Every placeholder-shaped token in `text`: "as_" + 32 lowercase hex, not
// preceded or followed by another hex digit or letter.
std::vector<std::string> find_placeholders(std::string_view text);

// Connection-level headers a proxy never forwards (RFC 9110 section 7.6.1),
// plus the framing headers it recomputes. Case-insensitive.
bool is_hop_by_hop(std::string_view name);

// The query without the parameters whose text contains `needle`.
std::string drop_query_params_containing(std::string_view query, std::string_view needle);
// The query without the parameter `name` (as written, not decoded).
std::string drop_query_param(std::string_view query, std::string_view name);

// Replaces every occurrence of `needle` by `replacement` in a stream fed in
// pieces. Output is held back only while it could still be the start of a
// match (at most needle.size() - 1 bytes, usually none), so a stream of small
// events is passed on event by event. Knuth-Morris-Pratt, so a long needle
// costs O(input) per piece.
class Replacer
{
public:
  Replacer(std::string needle, std::string replacement);
  ~Replacer();
  Replacer(const Replacer&) = delete;
  Replacer& operator=(const Replacer&) = delete;

  // Appends what is final to `out`; returns the number of replacements made.
  size_t feed(std::string_view in, std::string& out);
  // The held-back tail, at the end of the stream.
  void finish(std::string& out);

private:
  std::string m_needle;
  std::string m_replacement;
  std::vector<size_t> m_fail;
  size_t m_state = 0; // bytes of m_needle matched, held back
};

// One-shot Replacer over a whole string.
std::string replace_all(std::string_view text, std::string_view needle, std::string_view replacement);

} // namespace proxy
