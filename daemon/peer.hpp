#pragma once
// Who is on the other end of an accepted socket, decided once, on accept,
// before any request is read (watchman's peerIsOwner, DESIGN.md section 4).
//
// A peer is served only when both hold:
// - its uid (SO_PEERCRED) is the daemon's;
// - it lives in the daemon's user namespace. A process of our uid inside
//   `unshare -Ur` (a sandbox, a container an agent made itself) has every
//   capability over its own namespace, and SO_PEERCRED still reports our uid
//   for it; so the uid alone would let a namespaced process whose mounts we
//   do not share reach the store. Its /proc/PID/ns/user is compared with ours
//   (device and inode), and its mount namespace is recorded for the audit.
//
// Fail closed: a peer whose pid we cannot see (pid 0: another pid namespace
// that is not ours or below it) or whose namespaces we cannot read is refused.
// Pid reuse: the pid is pinned with a pidfd (SO_PEERPIDFD where the kernel has
// it, Linux 6.5; else pidfd_open at once), and the namespaces count only if
// that process is still alive after they were read. Where pidfds do not work
// (old kernels, valgrind), the process's start time must be the same before
// and after the read instead.
// Called on the io thread; reads /proc only.

#include <sys/types.h>

#include <string>

namespace server {

struct Peer
{
  pid_t pid = 0;
  uid_t uid = 0;
};

struct PeerCheck
{
  Peer peer;
  bool allowed = false;
  std::string reason;  // when refused: "uid" or "namespace", for the audit line
  std::string details; // when refused: what was seen, for the audit line and the log
};

PeerCheck check_peer(int socket_fd);

} // namespace server
