#include "audit/lines.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <unistd.h>

#include <algorithm>

namespace audit {

namespace {

constexpr size_t k_chunk_size = 64 * 1024;

// Reads exactly `size` bytes at `offset`; a file that shrank underneath us is an error.
void pread_exact(int fd, char* out, size_t size, uint64_t offset, const std::string& what)
{
  while (size > 0) {
    const ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to read " + what);
    }
    if (n == 0) {
      throw util::Error(util::Errc::io, "failed to read " + what + ": file shrank while reading");
    }
    out += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

} // namespace

LineReader::LineReader(int fd, uint64_t limit, std::string what)
  : m_fd(fd), m_remaining(limit), m_what(std::move(what))
{
}

std::optional<std::string> LineReader::next()
{
  while (true) {
    const size_t newline = m_buf.find('\n', m_pos);
    if (newline != std::string::npos) {
      std::string line = m_buf.substr(m_pos, newline - m_pos);
      m_pos = newline + 1;
      return line;
    }
    if (m_remaining == 0) {
      return std::nullopt;
    }
    m_buf.erase(0, m_pos);
    m_pos = 0;
    const size_t old_size = m_buf.size();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk_size, m_remaining));
    m_buf.resize(old_size + want);
    const ssize_t n = ::read(m_fd, m_buf.data() + old_size, want);
    if (n < 0) {
      m_buf.resize(old_size);
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to read " + m_what);
    }
    m_buf.resize(old_size + static_cast<size_t>(n));
    m_remaining = n == 0 ? 0 : m_remaining - static_cast<uint64_t>(n);
  }
}

std::string_view LineReader::fragment() const
{
  return std::string_view(m_buf).substr(m_pos);
}

ReverseLineReader::ReverseLineReader(int fd, uint64_t end, std::string what)
  : m_fd(fd), m_what(std::move(what)), m_pos(end)
{
}

std::optional<std::string> ReverseLineReader::previous()
{
  while (true) {
    if (!m_buf.empty()) {
      const size_t terminator = m_buf.size() - 1;
      const size_t newline = terminator == 0 ? std::string::npos : m_buf.rfind('\n', terminator - 1);
      if (newline != std::string::npos) {
        std::string line = m_buf.substr(newline + 1, terminator - newline - 1);
        m_buf.resize(newline + 1);
        return line;
      }
      if (m_pos == 0) {
        std::string line = m_buf.substr(0, terminator);
        m_buf.clear();
        return line;
      }
    } else if (m_pos == 0) {
      return std::nullopt;
    }
    // The line starts before m_buf: prepend the chunk before it. m_buf keeps
    // only unreturned bytes, so it stays about one chunk plus one line long.
    const size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk_size, m_pos));
    std::string chunk(want, '\0');
    pread_exact(m_fd, chunk.data(), want, m_pos - want, m_what);
    m_pos -= want;
    m_buf.insert(0, chunk);
  }
}

uint64_t complete_prefix_size(int fd, uint64_t size, const std::string& what)
{
  std::string chunk;
  uint64_t end = size;
  while (end > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk_size, end));
    chunk.resize(want);
    pread_exact(fd, chunk.data(), want, end - want, what);
    const size_t newline = chunk.rfind('\n');
    if (newline != std::string::npos) {
      return end - want + newline + 1;
    }
    end -= want;
  }
  return 0;
}

} // namespace audit
