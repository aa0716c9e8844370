#pragma once
// The anchor: the chain's head (the seq and hash of the last durable line)
// kept apart from audit.log, so that cutting lines off the end of the log
// shows. `verify` reports a log that ends before the anchored seq, or whose
// line at that seq has another hash, as tampering.
//
// audit.anchor, next to audit.log, written atomically (util::AtomicFile):
//   {"version":1,"seq":N,"hash":"<64 hex>","written_at":"<RFC 3339>","mac":"<64 hex>"}
// mac = HMAC-SHA-256(key, k_anchor_label + seq + "\n" + hash + "\n" + written_at),
// so that whoever can write the file but not decrypt secrets.age cannot move
// the anchor to a shorter log. The label keeps an anchor MAC from ever being
// a valid line MAC (a line's body starts with '{').
//
// Anchoring (run by audit::Log on its writer thread, key set only) writes the
// file after the first durable batch, then at most every k_file_interval
// while lines are written, and at close; it sends the head to the journal or
// syslog (journal.hpp) at most every k_publish_interval. A pending write that
// no later batch triggers is written at its deadline, so a head is never left
// unanchored for longer than the interval.
//
// What an anchor cannot do: lines written after the last anchor can be cut
// without a trace in the file (the running daemon still holds its head in
// memory, and the journal has a copy every 10 s), and someone who kept an
// older, genuine audit.anchor can put it back together with a cut.

#include "audit/journal.hpp"
#include "audit/key.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace audit {

inline constexpr std::string_view k_anchor_label = "agent-secrets audit anchor v1\n";

struct Anchor
{
  uint64_t seq = 0;
  std::string hash;       // the hash member of line `seq`
  std::string written_at; // RFC 3339, informational
};

// audit.anchor in the directory of `audit_path`.
std::string anchor_path_for(const std::string& audit_path);

// Writes the anchor atomically. Throws util::Error (Errc::io).
void write_anchor(const std::string& path, const Key& key, const Anchor& anchor);

struct AnchorRead
{
  enum class State { missing, valid, bad_mac, malformed };
  State state = State::missing;
  Anchor anchor;       // set for valid and bad_mac
  std::string problem; // why it is not valid, for messages
};

// Reads and checks audit.anchor. Throws util::Error (Errc::io) only when the
// file exists and cannot be read.
AnchorRead read_anchor(const std::string& path, const Key& key);

// The writer thread's anchoring policy (see above). Not thread-safe except
// sink(): the Log calls it from its writer thread, and from its destructor
// after that thread has ended.
class Anchoring
{
public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto k_file_interval = std::chrono::seconds{2};
  static constexpr auto k_publish_interval = std::chrono::seconds{10};

  Anchoring(std::string anchor_path, std::shared_ptr<const Key> key, std::string audit_path);

  // The head moved: line `seq` with `hash` is durable. Writes what is due.
  // Throws util::Error when the anchor file cannot be written (the head
  // stays pending and is retried).
  void on_durable(uint64_t seq, std::string_view hash, std::string written_at, Clock::time_point now);
  // When the next pending write is due; nullopt when nothing is pending.
  std::optional<Clock::time_point> deadline() const;
  // Writes what is due at `now`, or everything pending when `final`.
  void flush(Clock::time_point now, bool final);

  // Where the last head was published (journal, syslog or none).
  Sink sink() const { return m_publisher.last_sink(); }

private:
  std::string m_path;
  std::shared_ptr<const Key> m_key;
  HeadPublisher m_publisher;
  Anchor m_head;
  bool m_file_pending = false;
  bool m_publish_pending = false;
  std::optional<Clock::time_point> m_file_at;    // last file write
  std::optional<Clock::time_point> m_publish_at; // last publish
};

} // namespace audit
