#pragma once
// Internal to proxy/: a blocking view of the agent's socket for a worker
// (transfer.cpp). Beast's SyncReadStream and SyncWriteStream over poll() in
// k_slice_ms slices, so that a revoked lease or a stopping daemon interrupts
// a transfer stuck on a slow agent; a stalled agent fails after
// k_stall_timeout.

#include "proxy/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>

namespace proxy {

inline constexpr int k_slice_ms = 100; // how often a blocked worker checks for cancellation

class FdStream
{
public:
  FdStream(int fd, const std::atomic<bool>& cancelled, const std::atomic<bool>& stopping)
    : m_fd(fd), m_cancelled(cancelled), m_stopping(stopping)
  {
  }

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec)
  {
    const asio::mutable_buffer b = first(buffers);
    return io(POLLIN, ec, [&] { return ::recv(m_fd, b.data(), b.size(), 0); }, b.size());
  }
  // The throwing forms Beast's stream concepts also require.
  template <typename Buffers>
  size_t read_some(const Buffers& buffers)
  {
    return or_throw([&](beast::error_code& ec) { return read_some(buffers, ec); });
  }
  // A gather write: a chunk's size line, data and CRLF, or a header's
  // fields, leave in one sendmsg rather than one send each.
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec)
  {
    iovec iov[64];
    size_t count = 0;
    size_t total = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers) && count < 64; ++it) {
      const asio::const_buffer b = *it;
      if (b.size() > 0) {
        iov[count++] = {const_cast<void*>(b.data()), b.size()};
        total += b.size();
      }
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    return io(POLLOUT, ec, [&] { return ::sendmsg(m_fd, &msg, MSG_NOSIGNAL); }, total);
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers)
  {
    return or_throw([&](beast::error_code& ec) { return write_some(buffers, ec); });
  }

private:
  template <typename Op>
  static size_t or_throw(Op op)
  {
    beast::error_code ec;
    const size_t n = op(ec);
    if (ec) {
      throw beast::system_error{ec};
    }
    return n;
  }

  template <typename Buffers>
  static auto first(const Buffers& buffers)
  {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      if (asio::buffer_size(*it) > 0) {
        return *it;
      }
    }
    return *asio::buffer_sequence_begin(buffers);
  }

  template <typename Op>
  size_t io(short events, beast::error_code& ec, Op op, size_t size)
  {
    ec = {};
    if (size == 0) {
      return 0;
    }
    const auto deadline = Clock::now() + k_stall_timeout;
    for (;;) {
      if (m_cancelled || m_stopping) {
        ec = asio::error::operation_aborted;
        return 0;
      }
      const ssize_t n = op();
      if (n > 0) {
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
      if (Clock::now() > deadline) {
        ec = beast::error::timeout;
        return 0;
      }
      pollfd p{m_fd, events, 0};
      ::poll(&p, 1, k_slice_ms);
    }
  }

  int m_fd;
  const std::atomic<bool>& m_cancelled;
  const std::atomic<bool>& m_stopping;
};

} // namespace proxy
