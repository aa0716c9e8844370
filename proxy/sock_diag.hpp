#pragma once
// Who owns the other end of a loopback TCP connection. TCP has no
// SO_PEERCRED, so the proxy asks the kernel's socket-diagnostics netlink
// interface (NETLINK_SOCK_DIAG, inet_diag) for the socket whose source is the
// connection's remote end and whose destination is its local end: that socket
// is the client's, and the kernel reports the uid that created it (in this
// process's user namespace).
//
// Contract: one SockDiag per thread (it owns one netlink socket). Only
// connections within this network namespace can be found, which every
// loopback connection is.

#include "util/file.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

namespace proxy {

class SockDiag
{
public:
  // Opens the netlink socket. Throws util::Error(io) when the kernel has no
  // NETLINK_SOCK_DIAG (then no connection could be told apart).
  SockDiag();

  // The uid owning the peer of the connected TCP socket `fd` (IPv4, IPv6,
  // or IPv4-mapped IPv6). nullopt when the kernel does not know the peer
  // (it closed already, or it is not on this host); `why` says what failed.
  std::optional<uid_t> peer_uid(int fd, std::string* why = nullptr);

private:
  util::UniqueFd m_fd;
  uint32_t m_seq = 0;
};

} // namespace proxy
