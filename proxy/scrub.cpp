#include "proxy/scrub.hpp"

#include "util/encoding.hpp"
#include "util/file.hpp"

#include <algorithm>
#include <string.h> // explicit_bzero

namespace proxy {

// ---------------------------------------------------------------- Needles

Needles::Needles(std::vector<std::pair<std::string, std::string>> pairs)
{
  size_t total = 1;
  for (const auto& [needle, replacement] : pairs) {
    total += needle.size();
  }
  m_nodes.reserve(total);
  m_nodes.emplace_back();
  // The trie.
  for (const auto& [needle, replacement] : pairs) {
    if (needle.empty()) {
      continue;
    }
    uint32_t node = 0;
    for (const char ch : needle) {
      const auto c = static_cast<unsigned char>(ch);
      const uint32_t next = child(node, c);
      node = next != 0 ? next : add_child(node, c);
    }
    if (m_nodes[node].replacement < 0) {
      m_nodes[node].replacement = static_cast<int32_t>(m_replacements.size());
      m_replacements.push_back(replacement);
    }
  }
  // Fail links, breadth first: a node's fail is the node of the longest
  // proper suffix of its text that is also a prefix of some needle.
  std::vector<uint32_t> order;
  order.reserve(m_nodes.size());
  order.push_back(0);
  for (size_t at = 0; at < order.size(); ++at) {
    const uint32_t node = order[at];
    for (uint32_t ch = m_nodes[node].first_child; ch != 0; ch = m_nodes[ch].next_sibling) {
      m_nodes[ch].fail = node == 0 ? 0 : step(m_nodes[node].fail, m_nodes[ch].byte);
      m_nodes[ch].out = m_nodes[ch].replacement >= 0 ? ch : m_nodes[m_nodes[ch].fail].out;
      order.push_back(ch);
    }
  }
  for (auto& [needle, replacement] : pairs) {
    util::wipe(needle);
  }
}

Needles::~Needles()
{
  // The edges spell the needles.
  explicit_bzero(m_nodes.data(), m_nodes.size() * sizeof(Node));
  explicit_bzero(m_root, sizeof(m_root));
  for (auto& r : m_replacements) {
    util::wipe(r);
  }
}

uint32_t Needles::add_child(uint32_t node, unsigned char c)
{
  const auto id = static_cast<uint32_t>(m_nodes.size());
  Node n;
  n.depth = m_nodes[node].depth + 1;
  n.byte = c;
  n.next_sibling = m_nodes[node].first_child;
  m_nodes.push_back(n);
  m_nodes[node].first_child = id;
  if (node == 0) {
    m_root[c] = id;
  }
  return id;
}

uint32_t Needles::child(uint32_t node, unsigned char c) const
{
  if (node == 0) {
    return m_root[c];
  }
  for (uint32_t ch = m_nodes[node].first_child; ch != 0; ch = m_nodes[ch].next_sibling) {
    if (m_nodes[ch].byte == c) {
      return ch;
    }
  }
  return 0;
}

uint32_t Needles::step(uint32_t node, unsigned char c) const
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

// ---------------------------------------------------------------- MultiReplacer

MultiReplacer::MultiReplacer(std::shared_ptr<const Needles> needles) : m_needles(std::move(needles)) {}

MultiReplacer::MultiReplacer(std::vector<std::pair<std::string, std::string>> pairs)
  : m_needles(std::make_shared<const Needles>(std::move(pairs)))
{
}

MultiReplacer::~MultiReplacer()
{
  util::wipe(m_held); // it may end in part of a needle
}

void MultiReplacer::append_text(std::string& out, uint64_t from, uint64_t to, std::string_view in, uint64_t in_at) const
{
  if (from < in_at) {
    const uint64_t end = std::min(to, in_at);
    out.append(m_held, static_cast<size_t>(from - m_held_at), static_cast<size_t>(end - from));
    from = end;
  }
  if (to > from) {
    out.append(in.substr(static_cast<size_t>(from - in_at), static_cast<size_t>(to - from)));
  }
}

size_t MultiReplacer::resolve(uint64_t frontier, std::string& out, std::string_view in, uint64_t in_at)
{
  size_t replaced = 0;
  for (;;) {
    // The leftmost match starting before the frontier, the longest of those.
    const Match* best = nullptr;
    for (const auto& m : m_pending) {
      if (m.start >= m_written && m.start < frontier
          && (!best || m.start < best->start || (m.start == best->start && m.length > best->length))) {
        best = &m;
      }
    }
    if (!best) {
      break;
    }
    append_text(out, m_written, best->start, in, in_at);
    out += m_needles->m_replacements[static_cast<size_t>(best->replacement)];
    ++replaced;
    m_written = best->start + best->length;
  }
  if (frontier > m_written) {
    append_text(out, m_written, frontier, in, in_at);
    m_written = frontier;
  }
  // Matches that overlap one replaced, or were replaced, are gone.
  std::erase_if(m_pending, [&](const Match& m) { return m.start < m_written; });
  return replaced;
}

size_t MultiReplacer::feed(std::string_view in, std::string& out)
{
  const Needles& n = *m_needles;
  const uint64_t in_at = m_pos;
  size_t replaced = 0;
  size_t i = 0;
  while (i < in.size()) {
    if (m_state == 0) {
      // Nothing in progress: skip to the next byte that starts a needle.
      while (i < in.size() && n.m_root[static_cast<unsigned char>(in[i])] == 0) {
        ++i;
      }
      if (i == in.size()) {
        break;
      }
    }
    m_state = n.step(m_state, static_cast<unsigned char>(in[i++]));
    const uint64_t pos = in_at + i;
    for (uint32_t o = n.m_nodes[m_state].out; o != 0; o = n.m_nodes[n.m_nodes[o].fail].out) {
      const uint64_t start = pos - n.m_nodes[o].depth;
      if (start >= m_written) {
        m_pending.push_back({start, n.m_nodes[o].depth, n.m_nodes[o].replacement});
      }
    }
    if (!m_pending.empty()) {
      // No match can start before the frontier any more: the longest text
      // still in progress starts there. A leaf is a needle that cannot grow,
      // so a match starting there is final too (the placeholder is not held
      // back until the next byte).
      const auto& node = n.m_nodes[m_state];
      const uint64_t frontier = pos - node.depth + (node.first_child == 0 ? 1 : 0);
      replaced += resolve(frontier, out, in, in_at);
    }
  }
  m_pos = in_at + in.size();
  const auto& node = n.m_nodes[m_state];
  const uint64_t frontier = std::min(m_pos, m_pos - node.depth + (node.first_child == 0 ? 1 : 0));
  replaced += resolve(frontier, out, in, in_at);
  // Keep what is not out yet: the start of a possible match.
  std::string held;
  append_text(held, m_written, m_pos, in, in_at);
  util::wipe(m_held);
  m_held = std::move(held);
  m_held_at = m_written;
  return replaced;
}

size_t MultiReplacer::finish(std::string& out)
{
  const size_t replaced = resolve(m_pos, out, {}, m_pos);
  util::wipe(m_held);
  m_held_at = m_pos;
  m_pending.clear();
  m_state = 0;
  return replaced;
}

// ---------------------------------------------------------------- scrubbing

std::shared_ptr<const Needles> scrub_needles(std::string_view value, std::string_view placeholder)
{
  std::vector<std::pair<std::string, std::string>> pairs;
  for (auto& form : util::encoded_forms(value)) {
    pairs.emplace_back(std::move(form.text), std::string(placeholder));
  }
  return std::make_shared<const Needles>(std::move(pairs));
}

std::string scrub(std::string_view text, const std::shared_ptr<const Needles>& needles)
{
  MultiReplacer r{needles};
  std::string out;
  r.feed(text, out);
  r.finish(out);
  return out;
}

} // namespace proxy
