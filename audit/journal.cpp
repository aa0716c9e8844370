#include "audit/journal.hpp"

#include "util/file.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace audit {

namespace {

constexpr const char* k_journal_socket = "/run/systemd/journal/socket";
constexpr const char* k_syslog_socket = "/dev/log";
constexpr const char* k_identifier = "agent-secrets";
// LOG_USER | LOG_INFO, as syslog(3) computes it: the user's own facility,
// which syslog daemons route where the user can read it.
constexpr int k_syslog_priority = (1 << 3) | 6;

std::string env_or(const char* name, const char* fallback)
{
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// One datagram (or, for a stream-type /dev/log, one connection and message);
// never blocks: the writer thread of the audit log calls this.
bool send_to(const std::string& path, std::string_view message, bool stream_fallback)
{
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return false;
  }
  if (::sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL, sa, sizeof(addr))
      == static_cast<ssize_t>(message.size())) {
    return true;
  }
  if (!stream_fallback || errno != EPROTOTYPE) {
    return false;
  }
  // Some syslog daemons listen on a stream socket; syslog(3) then ends each
  // message with a NUL byte.
  fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd || ::connect(fd.get(), sa, sizeof(addr)) != 0) {
    return false;
  }
  std::string framed(message);
  framed.push_back('\0');
  return ::send(fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
         == static_cast<ssize_t>(framed.size());
}

} // namespace

const char* sink_name(Sink sink)
{
  switch (sink) {
  case Sink::journal:
    return "journal";
  case Sink::syslog:
    return "syslog";
  case Sink::none:
    break;
  }
  return "none";
}

HeadPublisher::HeadPublisher(std::string audit_path)
  : m_audit_path(std::move(audit_path)),
    m_journal_socket(env_or("AGENT_SECRETS_TEST_JOURNAL_SOCKET", k_journal_socket)),
    m_syslog_socket(env_or("AGENT_SECRETS_TEST_SYSLOG_SOCKET", k_syslog_socket))
{
}

Sink HeadPublisher::publish(uint64_t seq, std::string_view hash)
{
  const std::string text = "audit head seq=" + std::to_string(seq) + " hash=" + std::string(hash) + " log="
                           + m_audit_path;
  // The journal's native protocol: KEY=value lines. Our own fields let
  // `journalctl AGENT_SECRETS_AUDIT_SEQ=...` find a head; journald adds the
  // trusted _PID and _UID that tell our daemon's entries from forged ones.
  const std::string journal = "MESSAGE=" + text + "\nPRIORITY=6\nSYSLOG_IDENTIFIER=" + k_identifier
                              + "\nAGENT_SECRETS_AUDIT_SEQ=" + std::to_string(seq)
                              + "\nAGENT_SECRETS_AUDIT_HASH=" + std::string(hash)
                              + "\nAGENT_SECRETS_AUDIT_LOG=" + m_audit_path + "\n";
  Sink sink = Sink::none;
  if (send_to(m_journal_socket, journal, false)) {
    sink = Sink::journal;
  } else {
    // RFC 3164, as syslog(3) formats it: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG
    char stamp[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    if (::localtime_r(&now, &local)) {
      std::strftime(stamp, sizeof(stamp), "%b %e %T", &local);
    }
    const std::string syslog = "<" + std::to_string(k_syslog_priority) + ">" + stamp + " " + k_identifier + "["
                               + std::to_string(::getpid()) + "]: " + text;
    if (send_to(m_syslog_socket, syslog, true)) {
      sink = Sink::syslog;
    }
  }
  m_last.store(sink);
  return sink;
}

} // namespace audit
