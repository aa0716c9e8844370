#pragma once
// The output filter of `secrets exec` (as `op run` does): every leased value
// in the child's stdout or stderr is replaced by k_concealed.
//
// - Only values of k_min_length bytes or more are masked: shorter ones would
//   mangle ordinary output and give little away.
// - Only the raw value is matched, byte for byte; encoded forms (base64, URL
//   or JSON escaping, hex) are not.
// - A value split across reads is still masked: feed() holds back a tail that
//   could still be the start of a value (at most longest value - 1 bytes) until
//   more data or finish() proves it cannot; nothing else is held back.
// - Where values overlap, the longest match at the earliest position wins.
// Each stream gets its own filter. Buffers that held values are wiped.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cmd {

class MaskFilter
{
public:
  static constexpr std::string_view k_concealed = "<concealed by agent-secrets>";
  static constexpr size_t k_min_length = 3;

  explicit MaskFilter(const std::vector<std::string>& values);
  ~MaskFilter();
  MaskFilter(const MaskFilter&) = delete;
  MaskFilter& operator=(const MaskFilter&) = delete;

  // Returns what can be written now.
  std::string feed(std::string_view chunk);
  // End of stream: returns everything still held back, masked.
  std::string finish();
  // Bytes held back, waiting for more data.
  size_t pending() const { return m_pending.size(); }
  // The values (as indexes into the constructor's vector) masked since the last
  // call, each once: what `exec --on-leak` reports.
  std::vector<size_t> take_hits();

private:
  std::string drain(bool eof);

  struct Value
  {
    std::string text;
    size_t index;
  };
  std::vector<Value> m_values; // longest first
  std::vector<size_t> m_hits;
  std::string m_pending;
};

} // namespace cmd
