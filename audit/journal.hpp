#pragma once
// Sends the audit chain's head (seq and hash) out of the home directory, to
// a log the user cannot rewrite: the systemd journal through its native
// socket (/run/systemd/journal/socket, one datagram of KEY=value lines), or,
// where there is no journal, syslog through /dev/log (an RFC 3164 datagram,
// what syslog(3) sends). Both are written by hand rather than through
// libsystemd or syslog(3) so that tests can point them at a socket of their
// own: AGENT_SECRETS_TEST_JOURNAL_SOCKET and AGENT_SECRETS_TEST_SYSLOG_SOCKET
// replace the two paths (tests only). A machine may have neither (a
// container): then nothing is sent and last_sink() says none.
//
// The message carries no secret: a line's MAC says nothing about the key.
// Thread-safe: last_sink() may be read from any thread.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace audit {

enum class Sink { none, journal, syslog };

// "journal", "syslog" or "none".
const char* sink_name(Sink sink);

class HeadPublisher
{
public:
  explicit HeadPublisher(std::string audit_path);

  // Sends one message naming the head; returns where it went. Never throws:
  // a missing journal is not an error of the audit log.
  Sink publish(uint64_t seq, std::string_view hash);
  Sink last_sink() const { return m_last.load(); }

private:
  std::string m_audit_path;
  std::string m_journal_socket;
  std::string m_syslog_socket;
  std::atomic<Sink> m_last{Sink::none};
};

} // namespace audit
