#include "daemon/peer.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

TEST_CASE("daemon: a peer of our uid in our namespaces is served")
{
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  util::UniqueFd a(fds[0]);
  util::UniqueFd b(fds[1]);
  const auto check = server::check_peer(a.get());
  CHECK(check.allowed);
  CHECK(check.reason.empty());
  CHECK(check.peer.pid == ::getpid());
  CHECK(check.peer.uid == ::geteuid());
}

TEST_CASE("daemon: a socket without a peer is refused, not served")
{
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto check = server::check_peer(fd.get());
  CHECK_FALSE(check.allowed);
  CHECK_FALSE(check.details.empty());
}
