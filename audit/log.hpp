#pragma once
// The append-only, hash-chained JSONL audit log (DESIGN.md section 6), which
// is also the lease table's write-ahead log (section 5).
//
// Line format, written with nlohmann::ordered_json in this member order:
//   seq, timestamp (RFC 3339 UTC ms), action, the caller's fields in their
//   order (secret_name?, client_id?, lease_id?, details?, success, peer?,
//   expires_at?, reason?, ...), prev, hash (always last; see chain.hpp).
// seq: our first line has seq 1; every later line has the previous line's
// seq + 1, also across restarts (the Log continues from the last line that
// carries a hash). Lines written by the Go daemon carry no seq, prev or hash;
// they may only appear before our first line, and our first line's prev
// covers the last of them.
//
// With a key (Keying), every line is keyed (hash = HMAC-SHA-256, prev = the
// previous line's hash) and the head is anchored (anchor.hpp). Without one
// the Log writes plain lines, as before the chain was keyed: unit tests and
// tools only; the daemon always keys its Log. What verify_file can and
// cannot prove is in verify.hpp.
//
// No line ever holds a secret value. Callers guarantee that; as a second line
// of defence, append() drops any member named "value" at any depth.

#include "audit/anchor.hpp"
#include "audit/key.hpp"
#include "audit/read.hpp"
#include "audit/verify.hpp"
#include "util/clock.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace audit {

// How the daemon keys its Log (daemon/audit_chain.cpp makes it from the store).
struct Keying
{
  std::shared_ptr<const Key> key;
  // Where the anchor goes (anchor_path_for(path)); empty: no anchor, no
  // journal (tests of the chain alone).
  std::string anchor_path;
  // Not used by the Log; carried for verify (VerifyOptions), so that the
  // running daemon verifies with what it keys, even after the store is wiped.
  uint64_t first_seq = 1;
  bool earlier_key_lost = false;
};

// The writer. Thread-safe: append() and the queries may be called from any
// thread. One writer thread does group commit: every line queued while the
// previous write+fdatasync ran goes out in the next single write and
// fdatasync. Callbacks run on that writer thread, without the Log's lock (they
// may call append() or the queries, never wait_durable()).
class Log
{
public:
  // Opens the file (creating it 0600, O_APPEND) and takes an exclusive flock
  // so that no second Log appends to it. Refuses a file that is group- or
  // world-accessible. A torn last line (no '\n', a crash mid-write) is cut
  // off and synced, never chained onto; torn_tail_repaired() reports it.
  // Then finds the last seq and the last line's hash and starts the writer.
  // With keying.key set, every line it appends is keyed and the head is
  // anchored. Throws util::Error (Errc::io).
  Log(std::string path, const util::Clock& clock, Keying keying = {});
  // Writes everything pending (one last attempt if writes were failing),
  // stops the writer thread, then anchors the final head (so that the last
  // line, daemon_stop, is covered).
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Assigns seq, timestamp, prev and hash at once, under the lock, so that
  // file order is seq order; queues the line and returns its seq.
  // `fields` must be an object with a non-empty string "action"; seq,
  // timestamp, prev and hash are the Log's own (util::Error Errc::internal).
  // Invalid UTF-8 in a field is written as U+FFFD.
  uint64_t append(nlohmann::ordered_json fields);

  // Called on the writer thread after each durable batch with durable_seq().
  void set_on_durable(std::function<void(uint64_t durable_seq)> cb);
  // Called on the writer thread when a write or fdatasync fails. The file is
  // cut back to its last durable size, so no partial line stays in it; the
  // lines stay queued, in order, and are retried with the next append() or
  // wait_durable(). durable_seq() does not move until they are written.
  void set_on_error(std::function<void(const std::string& message)> cb);

  // Blocks until line `seq` is durable. If it is not and a write fails (or
  // had failed and its retry fails), throws util::Error (Errc::io); the line
  // stays queued. Throws Errc::internal for a seq never returned by append().
  void wait_durable(uint64_t seq);

  uint64_t last_seq() const;    // the last seq assigned (0 if none)
  uint64_t durable_seq() const; // every line up to it is on disk
  // The last durable line's seq and hash (seq 0 before any line of ours):
  // what the file must still contain, whatever the anchor file says.
  Anchor durable_head() const;
  // The key lines are keyed with (null: plain lines), and the rest of the keying.
  const Keying& keying() const { return m_keying; }
  // Where the head was last published (none before the first, or without a key).
  Sink head_sink() const;
  bool torn_tail_repaired() const { return m_torn_tail_bytes > 0; }
  uint64_t torn_tail_bytes() const { return m_torn_tail_bytes; }
  // fdatasync calls made for batches (tests and benchmarks check batching).
  uint64_t sync_count() const { return m_sync_count.load(); }
  const std::string& path() const { return m_path; }

private:
  void run_writer();
  // Writes and syncs one batch; returns the error message on failure. Runs
  // on the writer thread only, as do the members it touches.
  std::optional<std::string> write_batch(std::string_view batch);
  void cut_to_durable_size();
  // Writer thread: anchors the head after a durable batch, or at a deadline.
  void anchor(std::optional<Anchor> head, bool final);
  // The same, for the writer loop: a failure goes to the on_error callback.
  void report_anchor_error(std::optional<Anchor> head);

  const std::string m_path;
  const util::Clock& m_clock;
  const Keying m_keying;
  std::unique_ptr<Anchoring> m_anchoring; // null without a key; writer thread only
  util::UniqueFd m_fd;
  uint64_t m_torn_tail_bytes = 0;
  std::atomic<uint64_t> m_sync_count{0};

  // Writer thread only.
  uint64_t m_durable_size = 0;
  bool m_needs_cut = false;

  mutable std::mutex m_mutex;
  std::condition_variable m_writer_cv;  // pending lines or stop
  std::condition_variable m_durable_cv; // durable_seq moved or a write failed
  uint64_t m_next_seq = 1;
  uint64_t m_durable_seq = 0;
  bool m_last_batch_shared = false; // the last fdatasync covered more than one line
  std::string m_prev_hex;      // what the next line's prev is (chain.hpp)
  std::string m_last_hash;     // the hash member of the last line appended
  std::string m_durable_hash;  // the hash member of line m_durable_seq
  std::string m_pending;       // lines appended, not yet handed to the writer
  bool m_held = false;         // the last write failed: wait for a retry request
  uint64_t m_failures = 0;     // failed attempts so far
  std::string m_last_error;
  bool m_stopping = false;
  std::function<void(uint64_t)> m_on_durable;
  std::function<void(const std::string&)> m_on_error;

  std::thread m_writer; // last: starts after everything above is ready
};

} // namespace audit
