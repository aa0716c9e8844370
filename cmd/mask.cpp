#include "cmd/mask.hpp"

#include "util/file.hpp"

#include <algorithm>
#include <utility>

namespace cmd {

MaskFilter::MaskFilter(const std::vector<std::string>& values)
{
  m_values.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& v = values[i];
    if (v.size() >= k_min_length
        && std::none_of(m_values.begin(), m_values.end(), [&](const Value& m) { return m.text == v; })) {
      m_values.push_back({v, i});
    }
  }
  std::stable_sort(m_values.begin(), m_values.end(),
                   [](const Value& a, const Value& b) { return a.text.size() > b.text.size(); });
}

MaskFilter::~MaskFilter()
{
  for (auto& v : m_values) {
    util::wipe(v.text);
  }
  util::wipe(m_pending);
}

std::string MaskFilter::feed(std::string_view chunk)
{
  if (m_values.empty()) {
    return std::string(chunk);
  }
  m_pending.append(chunk);
  return drain(false);
}

std::string MaskFilter::finish()
{
  std::string out = drain(true);
  util::wipe(m_pending);
  return out;
}

std::vector<size_t> MaskFilter::take_hits()
{
  return std::exchange(m_hits, {});
}

std::string MaskFilter::drain(bool eof)
{
  std::string out;
  const std::string_view data = m_pending;
  size_t i = 0;
  while (i < data.size()) {
    const std::string_view rest = data.substr(i);
    bool matched = false;
    bool maybe = false;
    for (auto& [v, index] : m_values) { // longest first: the first full match wins
      if (rest.size() >= v.size()) {
        if (rest.compare(0, v.size(), v) == 0) {
          out += k_concealed;
          i += v.size();
          matched = true;
          if (std::find(m_hits.begin(), m_hits.end(), index) == m_hits.end()) {
            m_hits.push_back(index);
          }
          break;
        }
      } else if (!eof && v.compare(0, rest.size(), rest) == 0) {
        // Could still become v, which is longer than any value left to try:
        // wait rather than mask a shorter value and leak the rest of v.
        maybe = true;
        break;
      }
    }
    if (matched) {
      continue;
    }
    if (maybe) {
      break; // hold back from here until more data (or EOF) decides
    }
    out += data[i];
    ++i;
  }
  // Keep the undecided tail; wipe what was consumed (it may have held a value).
  std::string tail(data.substr(i));
  util::wipe(m_pending);
  m_pending = std::move(tail);
  return out;
}

} // namespace cmd
