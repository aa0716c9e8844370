#include "cmd/mask.hpp"

#include <string.h> // explicit_bzero

#include <algorithm>

namespace cmd {

namespace {

void wipe(std::string& s)
{
  if (s.capacity() > 0) {
    explicit_bzero(s.data(), s.capacity());
  }
  s.clear();
}

} // namespace

MaskFilter::MaskFilter(const std::vector<std::string>& values)
{
  m_values.reserve(values.size());
  for (const auto& v : values) {
    if (v.size() >= k_min_length && std::find(m_values.begin(), m_values.end(), v) == m_values.end()) {
      m_values.push_back(v);
    }
  }
  std::stable_sort(m_values.begin(), m_values.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

MaskFilter::~MaskFilter()
{
  for (auto& v : m_values) {
    wipe(v);
  }
  wipe(m_pending);
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
  wipe(m_pending);
  return out;
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
    for (const auto& v : m_values) { // longest first: the first full match wins
      if (rest.size() >= v.size()) {
        if (rest.compare(0, v.size(), v) == 0) {
          out += k_concealed;
          i += v.size();
          matched = true;
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
  wipe(m_pending);
  m_pending = std::move(tail);
  return out;
}

} // namespace cmd
