#include "daemon/peer.hpp"

#include "util/file.hpp"
#include "util/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 // Linux 6.5; glibc 2.36's headers predate it
#endif

namespace server {

namespace {

struct NsId
{
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const NsId&) const = default;
};

bool read_ns(const std::string& path, NsId& out)
{
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return false;
  }
  out = {st.st_dev, st.st_ino};
  return true;
}

const NsId& own_user_ns()
{
  static const NsId ns = [] {
    NsId id;
    read_ns("/proc/self/ns/user", id); // failing here leaves {0,0}, which no peer matches
    return id;
  }();
  return ns;
}

util::UniqueFd pin_peer(int socket_fd, pid_t pid)
{
  int fd = -1;
  socklen_t len = sizeof(fd);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 && fd >= 0) {
    return util::UniqueFd(fd);
  }
  return util::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// Whether the pinned process is still alive; nullopt when there is no pidfd
// or the kernel (or valgrind) has no pidfd_send_signal.
std::optional<bool> still_alive(const util::UniqueFd& pidfd)
{
  if (!pidfd) {
    return std::nullopt;
  }
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) == 0) {
    return true;
  }
  return errno == ENOSYS ? std::nullopt : std::optional<bool>(false);
}

} // namespace

PeerCheck check_peer(int socket_fd)
{
  PeerCheck check;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    check.reason = "uid";
    check.details = std::string("cannot read the peer's credentials: ") + std::strerror(errno);
    return check;
  }
  check.peer = {cred.pid, cred.uid};
  if (cred.uid != ::geteuid()) {
    check.reason = "uid";
    check.details = "peer uid " + std::to_string(cred.uid) + " is not the daemon's uid";
    return check;
  }
  check.reason = "namespace";
  if (cred.pid <= 0) {
    check.details = "the peer's pid is not visible from the daemon's pid namespace";
    return check;
  }
  const auto pidfd = pin_peer(socket_fd, cred.pid);
  const auto started = util::process_start_time(cred.pid); // the fallback when there is no pidfd
  const std::string proc = "/proc/" + std::to_string(cred.pid) + "/ns/";
  NsId user;
  NsId mnt;
  const bool read = read_ns(proc + "user", user) && read_ns(proc + "mnt", mnt);
  const int read_errno = errno;
  const bool same_process =
    still_alive(pidfd).value_or(started.has_value() && util::process_start_time(cred.pid) == started);
  errno = read_errno;
  if (!read || !same_process) {
    check.details = "cannot read the namespaces of peer pid " + std::to_string(cred.pid)
                    + (read ? ": it exited" : std::string(": ") + std::strerror(errno));
    return check;
  }
  if (!(user == own_user_ns())) {
    check.details = "peer pid " + std::to_string(cred.pid) + " is in another user namespace (user ns inode "
                    + std::to_string(user.ino) + ", mnt ns inode " + std::to_string(mnt.ino) + ")";
    return check;
  }
  check.allowed = true;
  check.reason.clear();
  return check;
}

} // namespace server
