#pragma once
// Response scrubbing: every text form of an injected value (util/encoding.hpp
// `encoded_forms`: raw, percent, base64 and base64url at three alignments,
// hex, JSON escapes) is replaced by the placeholder, in a stream split at
// arbitrary points. Pure. A Needles is immutable once built and may be shared
// by threads; a MultiReplacer is one stream's state, for one thread.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxy {

// The Aho-Corasick automaton of a set of needles, each with its replacement.
class Needles
{
public:
  // Empty needles are ignored; a needle given twice keeps its first
  // replacement. The needles may be secrets: `pairs` is wiped once built.
  explicit Needles(std::vector<std::pair<std::string, std::string>> pairs);
  ~Needles();
  Needles(const Needles&) = delete;
  Needles& operator=(const Needles&) = delete;

private:
  friend class MultiReplacer;
  // A trie node; its children are a sibling list (most nodes have one).
  struct Node
  {
    uint32_t first_child = 0; // 0: none (the root is never a child)
    uint32_t next_sibling = 0;
    uint32_t fail = 0;
    uint32_t out = 0;         // nearest node on the fail chain (self included) ending a needle; 0: none
    uint32_t depth = 0;
    int32_t replacement = -1; // the needle ending here: index into m_replacements
    unsigned char byte = 0;   // the edge from the parent
  };

  uint32_t child(uint32_t node, unsigned char c) const;
  uint32_t step(uint32_t node, unsigned char c) const;
  uint32_t add_child(uint32_t node, unsigned char c);

  std::vector<Node> m_nodes; // m_nodes[0]: the root
  uint32_t m_root[256] = {}; // the root's children, direct: most bytes of a stream stop here
  std::vector<std::string> m_replacements;
};

// Replaces every needle in a stream fed in pieces. Leftmost-longest,
// non-overlapping: of the matches that start first, the longest wins, and the
// next match starts after it, as a sequential scan of the whole text would
// find them. Output is held back only while it could still be the start of a
// match (at most the longest needle - 1 bytes), so a stream of small events is
// passed on event by event. O(input) per piece.
class MultiReplacer
{
public:
  explicit MultiReplacer(std::shared_ptr<const Needles> needles);
  explicit MultiReplacer(std::vector<std::pair<std::string, std::string>> pairs);
  ~MultiReplacer();
  MultiReplacer(const MultiReplacer&) = delete;
  MultiReplacer& operator=(const MultiReplacer&) = delete;

  // Appends what is final to `out`; returns the number of replacements made.
  size_t feed(std::string_view in, std::string& out);
  // The held-back tail, at the end of the stream (the last matches included).
  // The replacer may then take a new stream.
  size_t finish(std::string& out);

private:
  struct Match
  {
    uint64_t start;
    uint32_t length;
    int32_t replacement;
  };

  // Appends stream bytes [from, to) that lie in m_held or in `in` (which starts at `in_at`).
  void append_text(std::string& out, uint64_t from, uint64_t to, std::string_view in, uint64_t in_at) const;
  // Writes out the pending matches that start before `frontier` (no later byte
  // can change them) and the plain bytes between them.
  size_t resolve(uint64_t frontier, std::string& out, std::string_view in, uint64_t in_at);

  std::shared_ptr<const Needles> m_needles;
  uint32_t m_state = 0;
  uint64_t m_pos = 0;     // stream offset after the last byte fed
  uint64_t m_written = 0; // stream offset: every byte before it is out (or replaced)
  uint64_t m_held_at = 0; // stream offset of m_held[0]
  std::string m_held;     // bytes from earlier pieces not yet written out
  std::vector<Match> m_pending;
};

// The needles for one injected value: each of its encoded forms, replaced by
// `placeholder`.
std::shared_ptr<const Needles> scrub_needles(std::string_view value, std::string_view placeholder);

// One-shot scrubbing of a whole string (a header value, an error message).
std::string scrub(std::string_view text, const std::shared_ptr<const Needles>& needles);

} // namespace proxy
