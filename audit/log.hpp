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
// Limits of a hash chain without a key, which verify_file cannot see:
// truncating whole lines off the end, and stripping seq/prev/hash from every
// one of our lines (they then look like Go lines; VerifyResult counts them in
// legacy_entries).
//
// No line ever holds a secret value. Callers guarantee that; as a second line
// of defence, append() drops any member named "value" at any depth.

#include "util/clock.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace audit {

struct VerifyResult
{
  bool ok = true;
  // Complete lines accepted before the first bad one (Go lines included).
  uint64_t entries = 0;
  // How many of `entries` are unchained Go lines.
  uint64_t legacy_entries = 0;
  std::optional<uint64_t> first_bad_line; // 1-based
  std::string message;
  // The file ends with bytes that are not a complete line: a crash mid-write
  // (Log repairs it on open), or a batch being written at this instant. Not a
  // chain break: those bytes are never an entry, so ok stays true.
  bool torn_tail = false;
};

// Walks the chain and reports the first broken line: unparsable, edited
// (hash), deleted or reordered (prev), bad seq, or a line without hash after
// the chain has started. A missing file is an empty, valid log.
// Throws util::Error (Errc::io) if the file cannot be read.
VerifyResult verify_file(const std::string& path);

// The last n parsed entries in file order (0 = all), Go lines included;
// unparsable lines and a torn tail are skipped. Missing file: empty.
std::vector<nlohmann::json> tail(const std::string& path, size_t n);

// Our entries with seq greater than `seq`, in order (WAL replay). Reads back
// from the end only as far as needed. Missing file: empty.
std::vector<nlohmann::json> read_after(const std::string& path, uint64_t seq);

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
  // Throws util::Error (Errc::io).
  Log(std::string path, const util::Clock& clock);
  // Writes everything pending (one last attempt if writes were failing) and
  // stops the writer thread.
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

  const std::string m_path;
  const util::Clock& m_clock;
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
  std::string m_prev_hex;      // sha256 of the last line appended
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
