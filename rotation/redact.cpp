#include "rotation/redact.hpp"

#include "rotation/runner.hpp"
#include "util/encoding.hpp"
#include "util/file.hpp"

#include <string.h>

#include <algorithm>

namespace rotation {

// Knuth-Morris-Pratt over the form's first bytes: linear, so a pathological
// stderr (one character repeated) costs no more than any other.
std::size_t partial_form_at_end(std::string_view text, std::string_view form)
{
  const std::size_t n = std::min(text.size(), form.size());
  if (n == 0) {
    return 0;
  }
  const std::string_view pattern = form.substr(0, n);
  std::vector<std::size_t> fallback(n, 0);
  for (std::size_t i = 1, k = 0; i < n; ++i) {
    while (k > 0 && pattern[i] != pattern[k]) {
      k = fallback[k - 1];
    }
    if (pattern[i] == pattern[k]) {
      ++k;
    }
    fallback[i] = k;
  }
  std::size_t q = 0;
  for (const char c : text.substr(text.size() - n)) {
    while (q > 0 && (q == n || pattern[q] != c)) {
      q = fallback[q - 1];
    }
    if (pattern[q] == c) {
      ++q;
    }
  }
  return q;
}

std::string redact_stderr(std::string& captured, bool more_came, const std::vector<std::string_view>& values)
{
  // Raw is the shortest form: a longer value cannot be whole in the text.
  std::vector<std::string_view> whole;
  for (const auto v : values) {
    if (!v.empty() && v.size() <= captured.size()) {
      whole.push_back(v);
    }
  }
  std::string text = util::redact_forms(captured, whole, k_redaction_mark);
  util::wipe(captured);
  if (!more_came && text.size() <= k_max_stderr) {
    return text;
  }
  std::size_t cut = std::min(text.size(), k_max_stderr - k_truncation_mark.size());
  // A form longer than the capture margin may start before the cut and end
  // past what was read: cut before what is there of its beginning. (A
  // coincidental match costs a few characters of stderr, nothing more.)
  std::size_t partial = 0;
  for (const auto v : values) {
    if (v.empty()) {
      continue;
    }
    for (auto& form : util::encoded_forms(v.substr(0, std::min(v.size(), cut)))) {
      partial = std::max(partial, partial_form_at_end(std::string_view(text).substr(0, cut), form.text));
      util::wipe(form.text);
    }
  }
  cut -= partial;
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++i) {
    --cut;
  }
  explicit_bzero(text.data() + cut, text.size() - cut);
  text.resize(cut);
  text += k_truncation_mark;
  return text;
}

} // namespace rotation
