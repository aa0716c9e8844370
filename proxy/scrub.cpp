#include "proxy/scrub.hpp"

#include "util/encoding.hpp"
#include "util/file.hpp"

#include <algorithm>
#include <deque>
#include <string.h> // explicit_bzero

namespace proxy {

MultiReplacer::MultiReplacer(const std::vector<std::pair<std::string, std::string>>& pairs)
{
  m_nodes.emplace_back();
  // The trie.
  for (const auto& [needle, replacement] : pairs) {
    if (needle.empty()) {
      continue;
    }
    uint32_t node = 0;
    for (const unsigned char c : needle) {
      uint32_t next = child(node, c);
      if (next == 0) {
        next = static_cast<uint32_t>(m_nodes.size());
        m_nodes.emplace_back();
        m_nodes.back().depth = m_nodes[node].depth + 1;
        auto& edges = m_nodes[node].next;
        edges.insert(std::lower_bound(edges.begin(), edges.end(), std::pair<unsigned char, uint32_t>{c, 0}),
                     {c, next});
      }
      node = next;
    }
    if (m_nodes[node].replacement < 0) {
      m_nodes[node].replacement = static_cast<int32_t>(m_replacements.size());
      m_replacements.push_back(replacement);
    }
    m_first[static_cast<unsigned char>(needle[0])] = true;
  }
  // Fail links breadth first: a node's fail is the longest proper suffix of
  // its text that is also a prefix of some needle.
  std::deque<uint32_t> queue;
  for (const auto& [c, next] : m_nodes[0].next) {
    queue.push_back(next);
  }
  for (const auto& [c, next] : m_nodes[0].next) {
    m_nodes[next].out = m_nodes[next].replacement >= 0 ? next : 0;
  }
  while (!queue.empty()) {
    const uint32_t node = queue.front();
    queue.pop_front();
    for (const auto& [c, next] : m_nodes[node].next) {
      m_nodes[next].fail = step(m_nodes[node].fail, c);
      m_nodes[next].out = m_nodes[next].replacement >= 0 ? next : m_nodes[m_nodes[next].fail].out;
      queue.push_back(next);
    }
  }
}

MultiReplacer::~MultiReplacer()
{
  // The trie's edges spell the needles, and the held bytes may be part of one.
  for (auto& node : m_nodes) {
    explicit_bzero(node.next.data(), node.next.size() * sizeof(node.next[0]));
  }
  for (auto& r : m_replacements) {
    util::wipe(r);
  }
  explicit_bzero(m_held.data(), m_held.capacity());
}

uint32_t MultiReplacer::child(uint32_t node, unsigned char c) const
{
  const auto& edges = m_nodes[node].next;
  if (edges.size() == 1) {
    return edges[0].first == c ? edges[0].second : 0; // most nodes: a chain
  }
  const auto it = std::lower_bound(edges.begin(), edges.end(), std::pair<unsigned char, uint32_t>{c, 0});
  return it != edges.end() && it->first == c ? it->second : 0;
}

uint32_t MultiReplacer::step(uint32_t node, unsigned char c) const
{
  for (;;) {
    if (const uint32_t next = child(node, c); next != 0) {
      return next;
    }
    if (node == 0) {
      return 0;
    }
    node = m_nodes[node].fail;
  }
}

size_t MultiReplacer::feed(std::string_view in, std::string& out)
{
  size_t replaced = 0;
  size_t i = 0;
  while (i < in.size()) {
    if (m_state == 0 && m_held.empty()) {
      // Fast path: nothing pending; copy up to the next byte that could start a match.
      size_t next = i;
      while (next < in.size() && !m_first[static_cast<unsigned char>(in[next])]) {
        ++next;
      }
      out.append(in.substr(i, next - i));
      m_pos += next - i;
      m_held_at = m_pos;
      i = next;
      if (i == in.size()) {
        break;
      }
    }
    const unsigned char c = static_cast<unsigned char>(in[i++]);
    m_state = step(m_state, c);
    m_held += static_cast<char>(c);
    ++m_pos;
    for (uint32_t o = m_nodes[m_state].out; o != 0; o = m_nodes[m_nodes[o].fail].out) {
      const uint64_t start = m_pos - m_nodes[o].depth;
      if (start >= m_taken_to) {
        m_pending.push_back({start, m_nodes[o].depth, m_nodes[o].replacement});
      }
    }
    // No match can start before the frontier any more: the longest text still
    // in progress starts there. A leaf is a needle that cannot grow, so a
    // match starting there is final too (the placeholder is not held back
    // until the next byte).
    const Node& node = m_nodes[m_state];
    const uint64_t frontier = m_pos - node.depth + (node.next.empty() ? 1 : 0);
    if (frontier > m_held_at) {
      replaced += resolve(frontier, out);
    }
  }
  return replaced;
}

size_t MultiReplacer::finish(std::string& out)
{
  const size_t replaced = resolve(m_pos, out);
  m_state = 0;
  return replaced;
}

size_t MultiReplacer::resolve(uint64_t frontier, std::string& out)
{
  size_t replaced = 0;
  uint64_t written = m_held_at; // stream offset: everything before it is out
  for (;;) {
    // The leftmost match starting before the frontier, the longest of those.
    const Match* best = nullptr;
    for (const auto& m : m_pending) {
      if (m.start >= written && m.start < frontier
          && (!best || m.start < best->start || (m.start == best->start && m.length > best->length))) {
        best = &m;
      }
    }
    if (!best) {
      break;
    }
    out.append(m_held, static_cast<size_t>(written - m_held_at), static_cast<size_t>(best->start - written));
    out += m_replacements[static_cast<size_t>(best->replacement)];
    ++replaced;
    written = best->start + best->length;
    m_taken_to = written;
  }
  const uint64_t release = std::max(written, std::min(frontier, m_pos));
  if (release > written) {
    out.append(m_held, static_cast<size_t>(written - m_held_at), static_cast<size_t>(release - written));
  }
  // Matches that overlap one just replaced, or that were replaced, are gone.
  std::erase_if(m_pending, [&](const Match& m) { return m.start < release; });
  const size_t drop = static_cast<size_t>(std::min<uint64_t>(release - m_held_at, m_held.size()));
  explicit_bzero(m_held.data(), drop);
  m_held.erase(0, drop);
  m_held_at += drop;
  return replaced;
}

std::vector<std::pair<std::string, std::string>> scrub_pairs(std::string_view value, std::string_view placeholder)
{
  std::vector<std::pair<std::string, std::string>> pairs;
  for (auto& form : util::encoded_forms(value)) {
    pairs.emplace_back(std::move(form.text), std::string(placeholder));
  }
  return pairs;
}

std::string scrub(std::string_view text, std::string_view value, std::string_view placeholder)
{
  auto pairs = scrub_pairs(value, placeholder);
  MultiReplacer r{pairs};
  for (auto& [needle, replacement] : pairs) {
    util::wipe(needle);
  }
  std::string out;
  r.feed(text, out);
  r.finish(out);
  return out;
}

} // namespace proxy
