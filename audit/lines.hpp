#pragma once
// Line readers over an audit file descriptor. Only '\n'-terminated lines are
// lines: unterminated trailing bytes are a torn write (or a batch being
// written at this instant) and are never returned as an entry.
// Both readers throw util::Error (Errc::io) on read errors.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace audit {

// Reads lines front to back from offset 0, up to `limit` bytes.
class LineReader
{
public:
  LineReader(int fd, uint64_t limit, std::string what);

  // The next complete line without its '\n'; nullopt at the end.
  std::optional<std::string> next();
  // After next() returned nullopt: the unterminated bytes at the end, if any.
  std::string_view fragment() const;

private:
  int m_fd;
  uint64_t m_remaining;
  std::string m_what;
  std::string m_buf;
  size_t m_pos = 0;
};

// Reads lines back to front, starting at `end`, which must be 0 or just past a '\n'.
class ReverseLineReader
{
public:
  ReverseLineReader(int fd, uint64_t end, std::string what);

  // The line before the last one returned, without its '\n'; nullopt at the start.
  std::optional<std::string> previous();

private:
  int m_fd;
  std::string m_what;
  uint64_t m_pos; // file offset of m_buf[0]
  std::string m_buf; // bytes not yet returned; ends with '\n' unless empty
};

// The size of the longest prefix of the first `size` bytes that ends with '\n'
// (0 if there is no '\n'): where a torn tail starts.
uint64_t complete_prefix_size(int fd, uint64_t size, const std::string& what);

} // namespace audit
