#include "audit/log.hpp"

#include "audit/chain.hpp"
#include "audit/lines.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

#include <cerrno>
#include <chrono>
#include <thread>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace audit {

namespace {

// Members the Log writes itself; a caller setting one is a bug.
constexpr std::string_view k_reserved[] = {"seq", "timestamp", "prev", "hash"};
// Never audited, at any depth: the name secret values travel under.
constexpr std::string_view k_forbidden = "value";
constexpr auto k_commit_delay = std::chrono::microseconds{200};

bool is_reserved(std::string_view key)
{
  for (const auto reserved : k_reserved) {
    if (key == reserved) {
      return true;
    }
  }
  return false;
}

void strip_forbidden(nlohmann::ordered_json& j)
{
  if (j.is_object()) {
    j.erase(std::string(k_forbidden));
    for (auto& member : j) {
      strip_forbidden(member);
    }
  } else if (j.is_array()) {
    for (auto& element : j) {
      strip_forbidden(element);
    }
  }
}

} // namespace

Log::Log(std::string path, const util::Clock& clock, Keying keying)
  : m_path(std::move(path)), m_clock(clock), m_keying(std::move(keying))
{
  const std::string what = "audit log " + m_path;
  m_fd.reset(::open(m_path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!m_fd) {
    util::throw_errno("failed to open " + what);
  }
  if (auto problem = util::permission_problem(m_path, false)) {
    throw util::Error(util::Errc::io, *problem);
  }
  if (::flock(m_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      throw util::Error(util::Errc::io, what + " is in use by another process");
    }
    util::throw_errno("failed to lock " + what);
  }

  struct stat st{};
  if (::fstat(m_fd.get(), &st) != 0) {
    util::throw_errno("failed to stat " + what);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  m_durable_size = complete_prefix_size(m_fd.get(), size, what);
  if (m_durable_size != size) {
    // A crash mid-write left a partial line. Chaining onto it would make our
    // next line unparsable; keeping it would keep bytes no one can verify.
    if (::ftruncate(m_fd.get(), static_cast<off_t>(m_durable_size)) != 0
        || ::fdatasync(m_fd.get()) != 0) {
      util::throw_errno("failed to cut the torn last line of " + what);
    }
    m_torn_tail_bytes = size - m_durable_size;
  }

  ReverseLineReader reader(m_fd.get(), m_durable_size, what);
  auto line = reader.previous();
  if (m_keying.key) {
    m_prev_hex = keyed_prev(line);
  } else {
    m_prev_hex = line ? sha256_hex(*line) : std::string(k_genesis_prev);
  }
  for (; line; line = reader.previous()) {
    // Go lines (no hash member) are skipped unparsed: a long Go prefix costs a read, not a parse.
    if (!has_hash_member(*line)) {
      continue;
    }
    if (auto seq = chained_seq(nlohmann::json::parse(*line, nullptr, false))) {
      m_next_seq = *seq + 1;
      m_last_hash = std::string(unseal_line(*line)->hash);
      break;
    }
  }
  m_durable_seq = m_next_seq - 1;
  m_durable_hash = m_last_hash;
  if (m_keying.key && !m_keying.anchor_path.empty()) {
    m_anchoring = std::make_unique<Anchoring>(m_keying.anchor_path, m_keying.key, m_path);
  }

  m_writer = std::thread([this] { run_writer(); });
}

Log::~Log()
{
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
    m_held = false; // one last attempt for lines whose write had failed
  }
  m_writer_cv.notify_one();
  m_writer.join();
  // The writer is gone: its anchoring state is ours now. The final head
  // covers the last lines (daemon_stop), which no later batch will anchor.
  try {
    anchor(std::nullopt, true);
  } catch (...) {
  }
}

uint64_t Log::append(nlohmann::ordered_json fields)
{
  if (!fields.is_object()) {
    throw util::Error(util::Errc::internal, "audit entry is not a JSON object");
  }
  const auto action = fields.find("action");
  if (action == fields.end() || !action->is_string() || action->get_ref<const std::string&>().empty()) {
    throw util::Error(util::Errc::internal, "audit entry has no action");
  }

  // Member order is fixed here, outside the lock; the lock only fills in the
  // chain's values and serializes.
  nlohmann::ordered_json entry = nlohmann::ordered_json::object();
  entry["seq"] = 0;
  entry["timestamp"] = "";
  entry["action"] = std::move(*action);
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    const std::string& key = it.key();
    if (key == "action" || key == k_forbidden) {
      continue;
    }
    if (is_reserved(key)) {
      throw util::Error(util::Errc::internal, "audit field " + key + " is set by the log, not by its caller");
    }
    strip_forbidden(it.value());
    entry[key] = std::move(it.value());
  }
  entry["prev"] = "";

  uint64_t seq = 0;
  {
    std::lock_guard lock(m_mutex);
    seq = m_next_seq;
    entry["seq"] = seq;
    entry["timestamp"] = util::format_rfc3339_ms(m_clock.now());
    entry["prev"] = m_prev_hex;
    // replace: a client-supplied name with invalid UTF-8 must not make an
    // action unauditable; the hash covers whatever bytes are written.
    const std::string body = entry.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    m_last_hash = m_keying.key ? m_keying.key->mac_hex(body) : sha256_hex(body);
    std::string line = seal_line(body, m_last_hash);
    m_prev_hex = m_keying.key ? m_last_hash : sha256_hex(line);
    m_pending += line;
    m_pending += '\n';
    ++m_next_seq;
    m_held = false; // a new line is the retry request after a failed write
  }
  m_writer_cv.notify_one();
  return seq;
}

void Log::set_on_durable(std::function<void(uint64_t)> cb)
{
  std::lock_guard lock(m_mutex);
  m_on_durable = std::move(cb);
}

void Log::set_on_error(std::function<void(const std::string&)> cb)
{
  std::lock_guard lock(m_mutex);
  m_on_error = std::move(cb);
}

void Log::wait_durable(uint64_t seq)
{
  std::unique_lock lock(m_mutex);
  if (seq >= m_next_seq) {
    throw util::Error(util::Errc::internal,
                      "audit seq " + std::to_string(seq) + " was never assigned in " + m_path);
  }
  if (seq <= m_durable_seq) {
    return;
  }
  if (m_held) {
    m_held = false;
    m_writer_cv.notify_one();
  }
  const uint64_t failures = m_failures;
  m_durable_cv.wait(lock, [&] { return seq <= m_durable_seq || m_failures != failures; });
  if (seq > m_durable_seq) {
    throw util::Error(util::Errc::io, m_last_error);
  }
}

uint64_t Log::last_seq() const
{
  std::lock_guard lock(m_mutex);
  return m_next_seq - 1;
}

uint64_t Log::durable_seq() const
{
  std::lock_guard lock(m_mutex);
  return m_durable_seq;
}

Anchor Log::durable_head() const
{
  std::lock_guard lock(m_mutex);
  return Anchor{m_durable_seq, m_durable_hash, {}};
}

Sink Log::head_sink() const
{
  // m_anchoring is set once in the constructor; sink() is atomic.
  return m_anchoring ? m_anchoring->sink() : Sink::none;
}

void Log::report_anchor_error(std::optional<Anchor> head)
{
  try {
    anchor(std::move(head), false);
  } catch (const std::exception& e) {
    // The lines are durable; only the anchor lags. Said through the same
    // callback as a failed write, so that the daemon logs it.
    std::function<void(const std::string&)> on_error;
    {
      std::lock_guard lock(m_mutex);
      on_error = m_on_error;
    }
    try {
      if (on_error) {
        on_error(std::string("failed to write the audit anchor: ") + e.what());
      }
    } catch (...) {
    }
  }
}

void Log::anchor(std::optional<Anchor> head, bool final)
{
  if (!m_anchoring) {
    return;
  }
  const auto now = Anchoring::Clock::now();
  if (head) {
    m_anchoring->on_durable(head->seq, head->hash, std::move(head->written_at), now);
  } else {
    m_anchoring->flush(now, final);
  }
}

void Log::run_writer()
{
  std::unique_lock lock(m_mutex);
  const auto has_work = [this] { return m_stopping || (!m_pending.empty() && !m_held); };
  while (true) {
    const auto deadline = m_anchoring ? m_anchoring->deadline() : std::nullopt;
    if (!deadline) {
      m_writer_cv.wait(lock, has_work);
    } else if (!m_writer_cv.wait_until(lock, *deadline, has_work)) {
      // No batch came to carry the pending anchor: write it now, so a quiet
      // log's last lines are anchored within the interval, not at the next line.
      lock.unlock();
      report_anchor_error(std::nullopt);
      lock.lock();
      continue;
    }
    if (m_pending.empty() || m_held) {
      break; // stopping: everything is written, or the last attempt failed
    }
    if (m_last_batch_shared && !m_stopping) {
      // Commit delay, as PostgreSQL's commit_delay with commit_siblings: with
      // several writers active, the first line after a sync waits a moment for
      // the others to join its fdatasync instead of each starting its own. A
      // lone writer never waits.
      lock.unlock();
      std::this_thread::sleep_for(k_commit_delay);
      lock.lock();
    }
    // Everything appended while the previous batch was being synced goes out
    // now, as one write and one fdatasync: the group commit.
    std::string batch;
    batch.swap(m_pending);
    const uint64_t batch_last = m_next_seq - 1;
    const std::string batch_last_hash = m_last_hash;
    lock.unlock();

    const auto error = write_batch(batch);
    if (!error) {
      // Before the batch is reported durable: the first acknowledged line
      // then always has an anchor on disk (a start that finds keyed lines
      // and no anchor can call it tampering), and later ones one at most
      // Anchoring::k_file_interval old.
      report_anchor_error(Anchor{batch_last, batch_last_hash, util::format_rfc3339_ms(m_clock.now())});
    }

    lock.lock();
    if (error) {
      // The batch precedes anything appended meanwhile, and each of those
      // lines' prev already covers it: put it back in front, unchanged.
      m_pending.insert(0, batch);
      m_held = true;
      ++m_failures;
      m_last_error = *error;
    } else {
      m_last_batch_shared = batch_last > m_durable_seq + 1;
      m_durable_seq = batch_last;
      m_durable_hash = batch_last_hash;
    }
    m_durable_cv.notify_all();
    const auto on_durable = error ? nullptr : m_on_durable;
    const auto on_error = error ? m_on_error : nullptr;
    const uint64_t durable = m_durable_seq;
    lock.unlock();
    // A throwing callback must not end the writer thread (std::terminate).
    try {
      if (on_durable) {
        on_durable(durable);
      }
      if (on_error) {
        on_error(*error);
      }
    } catch (...) {
    }
    lock.lock();
  }
}

std::optional<std::string> Log::write_batch(std::string_view batch)
{
  try {
    if (m_needs_cut) {
      cut_to_durable_size();
    }
    util::write_all(m_fd.get(), batch, "audit log " + m_path);
    ++m_sync_count;
    if (::fdatasync(m_fd.get()) != 0) {
      util::throw_errno("failed to sync audit log " + m_path);
    }
    m_durable_size += batch.size();
    return std::nullopt;
  } catch (const std::exception& e) {
    // Part of the batch may be in the file, or in the page cache without a
    // sync. Cut back so no torn or unsynced line stays before the retry; if
    // the cut fails too, it is redone before the next write.
    m_needs_cut = true;
    try {
      cut_to_durable_size();
    } catch (const std::exception&) {
    }
    return std::string(e.what());
  }
}

void Log::cut_to_durable_size()
{
  if (::ftruncate(m_fd.get(), static_cast<off_t>(m_durable_size)) != 0 || ::fdatasync(m_fd.get()) != 0) {
    util::throw_errno("failed to cut audit log " + m_path + " back to its last durable line");
  }
  m_needs_cut = false;
}

} // namespace audit
