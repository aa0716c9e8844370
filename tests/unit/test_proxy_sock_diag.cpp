#include "proxy/sock_diag.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

using proxy::SockDiag;

namespace {

// A listening loopback socket on a free port.
struct Listener
{
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;

  explicit Listener(int family)
  {
    fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (family == AF_INET) {
      auto& in = reinterpret_cast<sockaddr_in&>(addr);
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(in);
    } else {
      auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
      in6.sin6_family = AF_INET6;
      in6.sin6_addr = in6addr_loopback;
      len = sizeof(in6);
    }
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 8) != 0
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close();
    }
  }
  ~Listener() { close(); }
  void close()
  {
    if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
  }
  int connect() const
  {
    const int c = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(c, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
    return c;
  }
};

} // namespace

TEST_CASE("proxy: sock_diag names the owner of a loopback connection's peer")
{
  SockDiag diag;
  for (const int family : {AF_INET, AF_INET6}) {
    CAPTURE(family);
    Listener l(family);
    if (l.fd < 0) {
      CHECK(family == AF_INET6); // a host without IPv6 loopback
      continue;
    }
    const int client = l.connect();
    const int accepted = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(accepted >= 0);
    std::string why;
    const auto uid = diag.peer_uid(accepted, &why);
    CAPTURE(why);
    REQUIRE(uid.has_value());
    CHECK(*uid == ::geteuid());
    // Either end: the client's peer is the accepted socket.
    CHECK(diag.peer_uid(client) == ::geteuid());
    // Gone: the client reset the connection, so the kernel knows no peer.
    const linger abortive{1, 0};
    ::setsockopt(client, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
    ::close(client);
    CHECK_FALSE(diag.peer_uid(accepted, &why).has_value());
    CHECK_FALSE(why.empty());
    ::close(accepted);
  }
}

TEST_CASE("proxy: sock_diag tells another user's connection apart")
{
  const passwd* nobody = ::getpwnam("nobody");
  if (::geteuid() != 0 || !nobody) {
    MESSAGE("skipped: needs root and a nobody user");
    return;
  }
  SockDiag diag;
  Listener l(AF_INET);
  REQUIRE(l.fd >= 0);
  int done[2];
  REQUIRE(::pipe(done) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The client: nobody's socket, held open until the parent has looked.
    ::close(done[1]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) {
      ::_exit(2);
    }
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(c, reinterpret_cast<const sockaddr*>(&l.addr), l.len) != 0) {
      ::_exit(3);
    }
    char byte;
    (void)::read(done[0], &byte, 1);
    ::_exit(0);
  }
  ::close(done[0]);
  const int accepted = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(accepted >= 0);
  std::string why;
  const auto uid = diag.peer_uid(accepted, &why);
  ::close(done[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CAPTURE(why);
  REQUIRE(uid.has_value());
  CHECK(*uid == nobody->pw_uid);
  CHECK(*uid != ::geteuid());
  ::close(accepted);
}

TEST_CASE("proxy: sock_diag refuses what is not a TCP connection")
{
  SockDiag diag;
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  std::string why;
  CHECK_FALSE(diag.peer_uid(pair[0], &why).has_value());
  CHECK_FALSE(why.empty());
  ::close(pair[0]);
  ::close(pair[1]);
}
