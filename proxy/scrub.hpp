#pragma once
// Response scrubbing: every text form of an injected value (util/encoding.hpp
// `encoded_forms`: raw, percent, base64 and base64url at three alignments,
// hex, JSON escapes) is replaced by the placeholder, in a stream split at
// arbitrary points. Pure; one instance per stream, any thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proxy {

// Replaces many needles at once in a stream fed in pieces (Aho-Corasick).
// Leftmost-longest, non-overlapping: of the matches that start first, the
// longest wins, and the next match starts after it, as a sequential scan of
// the whole text would find them. Output is held back only while it could
// still be the start of a match (at most the longest needle - 1 bytes), so a
// stream of small events is passed on event by event. O(input) per piece.
class MultiReplacer
{
public:
  // Empty needles are ignored. A needle given twice keeps its first replacement.
  explicit MultiReplacer(const std::vector<std::pair<std::string, std::string>>& pairs);
  ~MultiReplacer();
  MultiReplacer(const MultiReplacer&) = delete;
  MultiReplacer& operator=(const MultiReplacer&) = delete;

  // Appends what is final to `out`; returns the number of replacements made.
  size_t feed(std::string_view in, std::string& out);
  // The held-back tail, at the end of the stream (the last matches included).
  size_t finish(std::string& out);

private:
  struct Node
  {
    std::vector<std::pair<unsigned char, uint32_t>> next; // sorted by byte
    uint32_t fail = 0;
    uint32_t out = 0;        // nearest node on the fail chain (self included) ending a needle; 0: none
    uint32_t depth = 0;
    int32_t replacement = -1; // the needle ending here: index into m_replacements
  };
  struct Match
  {
    uint64_t start;
    uint32_t length;
    int32_t replacement;
  };

  uint32_t child(uint32_t node, unsigned char c) const;
  uint32_t step(uint32_t node, unsigned char c) const;
  // Writes out every pending match that starts before `frontier` (no later
  // byte can change them), then the plain bytes before it.
  size_t resolve(uint64_t frontier, std::string& out);

  std::vector<Node> m_nodes; // m_nodes[0]: the root
  std::vector<std::string> m_replacements;
  bool m_first[256] = {};    // bytes that start some needle: the rest skip the automaton

  uint32_t m_state = 0;
  uint64_t m_pos = 0;        // stream offset after the last byte fed
  uint64_t m_held_at = 0;    // stream offset of m_held[0]
  uint64_t m_taken_to = 0;   // no match may start before this: it would overlap one replaced
  std::string m_held;        // bytes not yet written out
  std::vector<Match> m_pending;
};

// A MultiReplacer for one injected value: each of its encoded forms is
// replaced by `placeholder`.
std::vector<std::pair<std::string, std::string>> scrub_pairs(std::string_view value, std::string_view placeholder);

// One-shot scrubbing of a whole string (a header value, an error message).
std::string scrub(std::string_view text, std::string_view value, std::string_view placeholder);

} // namespace proxy
