#include "proxy/sock_diag.hpp"

#include "util/error.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace proxy {

namespace {

bool fail(std::string* why, std::string text)
{
  if (why) {
    *why = std::move(text);
  }
  return false;
}

// TCP states as the kernel numbers them (include/net/tcp_states.h).
constexpr uint8_t k_time_wait = 6;
constexpr uint8_t k_new_syn_recv = 12;

// An endpoint as inet_diag spells it: family, port and address in network order.
struct Endpoint
{
  int family = AF_UNSPEC;
  uint16_t port = 0;    // network order
  uint32_t addr[4] = {}; // network order; IPv4 in addr[0]
};

bool endpoint_of(const sockaddr_storage& ss, Endpoint& e)
{
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    e.family = AF_INET;
    e.port = in.sin_port;
    std::memcpy(&e.addr[0], &in.sin_addr, 4);
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    e.port = in6.sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      // A dual-stack listener: the client's socket is an IPv4 one.
      e.family = AF_INET;
      std::memcpy(&e.addr[0], in6.sin6_addr.s6_addr + 12, 4);
    } else {
      e.family = AF_INET6;
      std::memcpy(e.addr, &in6.sin6_addr, 16);
    }
    return true;
  }
  return false;
}

} // namespace

SockDiag::SockDiag() : m_fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG))
{
  if (!m_fd) {
    throw util::Error(util::Errc::io,
                      std::string("the proxy cannot ask the kernel who owns a connection (NETLINK_SOCK_DIAG): ")
                        + std::strerror(errno),
                      "load the inet_diag and tcp_diag kernel modules, or set proxy.listen to \"off\" in config.json");
  }
  // The kernel answers at once; a bound wait keeps a surprise from hanging the proxy.
  const timeval timeout{1, 0};
  ::setsockopt(m_fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

std::optional<uid_t> SockDiag::peer_uid(int fd, std::string* why)
{
  sockaddr_storage local{};
  sockaddr_storage remote{};
  socklen_t local_len = sizeof(local);
  socklen_t remote_len = sizeof(remote);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0
      || ::getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remote_len) != 0) {
    fail(why, std::string("the connection has no address: ") + std::strerror(errno));
    return std::nullopt;
  }
  Endpoint ours;
  Endpoint theirs;
  if (!endpoint_of(local, ours) || !endpoint_of(remote, theirs) || ours.family != theirs.family) {
    fail(why, "not a TCP/IP connection");
    return std::nullopt;
  }

  // The peer's socket: its source is our remote end, its destination our local end.
  struct
  {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST; // one socket by its 4-tuple, not a dump
  message.header.nlmsg_seq = ++m_seq;
  message.request.sdiag_family = static_cast<uint8_t>(theirs.family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0U;
  message.request.id.idiag_sport = theirs.port;
  message.request.id.idiag_dport = ours.port;
  std::memcpy(message.request.id.idiag_src, theirs.addr, sizeof(theirs.addr));
  std::memcpy(message.request.id.idiag_dst, ours.addr, sizeof(ours.addr));
  message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(m_fd.get(), &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel))
      != static_cast<ssize_t>(sizeof(message))) {
    fail(why, std::string("sock_diag request failed: ") + std::strerror(errno));
    return std::nullopt;
  }
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::recv(m_fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      fail(why, std::string("sock_diag answer failed: ") + (n < 0 ? std::strerror(errno) : "empty"));
      return std::nullopt;
    }
    // Messages are copied out of the buffer, not cast in place: no alignment
    // is assumed (clang's -Wcast-align), and a short message is never read past.
    const auto size = static_cast<size_t>(n);
    for (size_t at = 0; at + NLMSG_HDRLEN <= size;) {
      nlmsghdr h{};
      std::memcpy(&h, buffer + at, sizeof(h));
      if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > size - at) {
        break;
      }
      const char* payload = buffer + at + NLMSG_HDRLEN;
      const size_t payload_size = h.nlmsg_len - NLMSG_HDRLEN;
      at += NLMSG_ALIGN(h.nlmsg_len);
      if (h.nlmsg_seq != m_seq) {
        continue; // the late answer to an earlier request that timed out
      }
      if (h.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr e{};
        std::memcpy(&e, payload, std::min(payload_size, sizeof(e)));
        fail(why, std::string("the kernel knows no such peer: ") + std::strerror(-e.error));
        return std::nullopt;
      }
      if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || payload_size < sizeof(inet_diag_msg)) {
        continue;
      }
      inet_diag_msg diag{};
      std::memcpy(&diag, payload, sizeof(diag));
      const inet_diag_msg* d = &diag;
      // The kernel looked the socket up by this tuple; check it answered for it.
      if (d->id.idiag_sport != theirs.port || d->id.idiag_dport != ours.port
          || std::memcmp(d->id.idiag_src, theirs.addr, theirs.family == AF_INET ? 4 : 16) != 0) {
        fail(why, "the kernel answered for another socket");
        return std::nullopt;
      }
      // A TIME_WAIT or SYN_RECV entry is a bare tuple whose uid the kernel
      // reports as 0; ours never is one (we have not closed, it has
      // connected), and 0 must not read as root.
      if (d->idiag_state == k_time_wait || d->idiag_state == k_new_syn_recv) {
        fail(why, "the peer is no longer a full socket");
        return std::nullopt;
      }
      return static_cast<uid_t>(d->idiag_uid);
    }
  }
}

} // namespace proxy
