// The anchor file, the anchoring policy of the Log's writer thread, and the
// head sent to the journal or syslog (audit/anchor.hpp, audit/journal.hpp).
#include "audit/anchor.hpp"
#include "audit/chain.hpp"
#include "audit/log.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace {

using testutil::TempDir;

// A datagram socket standing in for journald or /dev/log.
class Listener
{
public:
  explicit Listener(const std::string& path) : m_fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0))
  {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(m_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  // The next datagram, or "" if none is waiting.
  std::string take()
  {
    char buf[4096];
    const ssize_t n = ::recv(m_fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

private:
  util::UniqueFd m_fd;
};

// Sets the test-only socket paths for the publishers made in its scope.
struct SocketEnv
{
  SocketEnv(const std::string& journal, const std::string& syslog)
  {
    ::setenv("AGENT_SECRETS_TEST_JOURNAL_SOCKET", journal.c_str(), 1);
    ::setenv("AGENT_SECRETS_TEST_SYSLOG_SOCKET", syslog.c_str(), 1);
  }
  ~SocketEnv()
  {
    ::unsetenv("AGENT_SECRETS_TEST_JOURNAL_SOCKET");
    ::unsetenv("AGENT_SECRETS_TEST_SYSLOG_SOCKET");
  }
};

} // namespace

TEST_CASE("audit anchor: written with a MAC, read back, and refused when moved or forged")
{
  TempDir dir;
  const auto path = dir.file("audit.anchor");
  const auto key = audit::Key::generate();
  CHECK(audit::read_anchor(path, key).state == audit::AnchorRead::State::missing);

  const audit::Anchor anchor{7, std::string(64, 'a'), "2026-01-01T00:00:00.000Z"};
  audit::write_anchor(path, key, anchor);
  const auto read = audit::read_anchor(path, key);
  CHECK(read.state == audit::AnchorRead::State::valid);
  CHECK(read.anchor.seq == 7);
  CHECK(read.anchor.hash == anchor.hash);

  CHECK(audit::read_anchor(path, audit::Key::generate()).state == audit::AnchorRead::State::bad_mac);
  auto doc = nlohmann::json::parse(util::read_file(path));
  doc["seq"] = 6;
  util::write_file_atomic(path, doc.dump());
  CHECK(audit::read_anchor(path, key).state == audit::AnchorRead::State::bad_mac);
  util::write_file_atomic(path, "{\"seq\":\"seven\"}");
  CHECK(audit::read_anchor(path, key).state == audit::AnchorRead::State::malformed);
  util::write_file_atomic(path, std::string(8192, ' '));
  CHECK(audit::read_anchor(path, key).state == audit::AnchorRead::State::malformed);
}

TEST_CASE("audit anchor: the file goes out at once, then at most every 2 s, then at the deadline or at close")
{
  TempDir dir;
  SocketEnv env(dir.file("no-journal"), dir.file("no-syslog"));
  const auto path = dir.file("audit.anchor");
  const auto key = std::make_shared<const audit::Key>(audit::Key::generate());
  audit::Anchoring anchoring(path, key, dir.file("audit.log"));
  using Clock = audit::Anchoring::Clock;
  const Clock::time_point t0{std::chrono::seconds{1000}};
  const auto seq_on_disk = [&] { return audit::read_anchor(path, *key).anchor.seq; };

  CHECK_FALSE(anchoring.deadline());
  anchoring.on_durable(1, std::string(64, '1'), "t1", t0);
  CHECK(seq_on_disk() == 1);
  CHECK_FALSE(anchoring.deadline());

  anchoring.on_durable(2, std::string(64, '2'), "t2", t0 + std::chrono::milliseconds{500});
  CHECK(seq_on_disk() == 1); // not due yet
  REQUIRE(anchoring.deadline());
  CHECK(*anchoring.deadline() == t0 + audit::Anchoring::k_file_interval);

  anchoring.flush(t0 + std::chrono::milliseconds{1999}, false);
  CHECK(seq_on_disk() == 1);
  anchoring.flush(t0 + audit::Anchoring::k_file_interval, false);
  CHECK(seq_on_disk() == 2);

  anchoring.on_durable(3, std::string(64, '3'), "t3", t0 + std::chrono::seconds{3});
  CHECK(seq_on_disk() == 2);
  anchoring.flush(t0 + std::chrono::seconds{3}, true);
  CHECK(seq_on_disk() == 3);
  CHECK(anchoring.sink() == audit::Sink::none);
}

TEST_CASE("audit anchor: the head goes to the journal, else to syslog, else nowhere")
{
  TempDir dir;
  const std::string hash(64, 'c');
  {
    Listener journal(dir.file("journal"));
    SocketEnv env(dir.file("journal"), dir.file("no-syslog"));
    audit::HeadPublisher publisher("/home/u/.agent-secrets/audit.log");
    CHECK(publisher.publish(42, hash) == audit::Sink::journal);
    const auto message = journal.take();
    CHECK(message.find("MESSAGE=audit head seq=42 hash=" + hash + " log=/home/u/.agent-secrets/audit.log\n")
          != std::string::npos);
    CHECK(message.find("\nAGENT_SECRETS_AUDIT_SEQ=42\n") != std::string::npos);
    CHECK(message.find("\nAGENT_SECRETS_AUDIT_HASH=" + hash + "\n") != std::string::npos);
    CHECK(message.find("\nSYSLOG_IDENTIFIER=agent-secrets\n") != std::string::npos);
  }
  {
    Listener syslog(dir.file("log"));
    SocketEnv env(dir.file("no-journal"), dir.file("log"));
    audit::HeadPublisher publisher("/x/audit.log");
    CHECK(publisher.publish(7, hash) == audit::Sink::syslog);
    CHECK(publisher.last_sink() == audit::Sink::syslog);
    const auto message = syslog.take();
    CHECK(message.starts_with("<14>"));
    CHECK(message.find(" agent-secrets[" + std::to_string(::getpid()) + "]: audit head seq=7 hash=" + hash
                       + " log=/x/audit.log")
          != std::string::npos);
  }
  {
    SocketEnv env(dir.file("none-1"), dir.file("none-2"));
    audit::HeadPublisher publisher("/x/audit.log");
    CHECK(publisher.publish(1, hash) == audit::Sink::none);
    CHECK(std::string(audit::sink_name(publisher.last_sink())) == "none");
  }
}

TEST_CASE("audit anchor: a keyed Log anchors its first durable line before it reports it, and its last at close")
{
  TempDir dir;
  SocketEnv env(dir.file("no-journal"), dir.file("no-syslog"));
  const auto path = dir.file("audit.log");
  const auto key = std::make_shared<const audit::Key>(audit::Key::generate());
  audit::Keying keying;
  keying.key = key;
  keying.anchor_path = audit::anchor_path_for(path);
  util::FakeClock clock;
  {
    audit::Log log(path, clock, keying);
    log.wait_durable(log.append({{"action", "daemon_start"}, {"success", true}}));
    const auto first = audit::read_anchor(keying.anchor_path, *key);
    REQUIRE(first.state == audit::AnchorRead::State::valid);
    CHECK(first.anchor.seq == 1);
    CHECK(first.anchor.hash == log.durable_head().hash);
    for (int i = 0; i < 5; ++i) {
      log.append({{"action", "lease_acquire"}, {"success", true}});
    }
    log.wait_durable(log.last_seq());
    CHECK(log.durable_head().seq == 6);
    CHECK(log.keying().key == key);
  }
  const auto last = audit::read_anchor(keying.anchor_path, *key);
  CHECK(last.anchor.seq == 6);
  audit::VerifyOptions options;
  options.key = key;
  options.anchor_path = keying.anchor_path;
  CHECK(audit::verify_file(path, options).ok);
  // No stray temp files.
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  }
}
