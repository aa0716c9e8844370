#include "daemon/audit_chain.hpp"

#include "audit/chain.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <spdlog/spdlog.h>

#include <dirent.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

namespace server {

namespace {

// What is wrong with the log, given the anchor and the key's first keyed
// line; nullopt when nothing is.
std::optional<std::string> tampering(const util::Paths& paths, const audit::Keying& keying, const audit::Head& head)
{
  const std::string anchor_path = keying.anchor_path;
  const auto read = audit::read_anchor(anchor_path, *keying.key);
  if (read.state != audit::AnchorRead::State::valid) {
    return read.problem + ": a cut of the log's end cannot be ruled out";
  }
  if (head.seq < keying.first_seq) {
    return "audit.log ends at seq " + std::to_string(head.seq) + ", before seq " + std::to_string(keying.first_seq)
           + ", the first line keyed under the store's audit key: lines were cut off its end";
  }
  const auto& anchor = read.anchor;
  const auto line = audit::find_line(paths.audit, anchor.seq);
  if (!line) {
    return "audit.log ends at seq " + std::to_string(head.seq) + ", below seq " + std::to_string(anchor.seq)
           + " that audit.anchor (written " + anchor.written_at + ") records: lines were cut off its end";
  }
  const auto sealed = audit::unseal_line(*line);
  if (!sealed || sealed->hash != anchor.hash) {
    return "the line at seq " + std::to_string(anchor.seq) + " is not the one audit.anchor (written "
           + anchor.written_at + ") records: the log was rewritten from there on";
  }
  return std::nullopt;
}

// Appends lines through a Log of its own, closed before the daemon opens its
// Log (which takes the same lock). Its destructor anchors the last line.
void append_lines(const util::Paths& paths, const util::Clock& clock, const audit::Keying& keying,
                  std::vector<nlohmann::ordered_json> lines)
{
  audit::Log log(paths.audit, clock, keying);
  if (log.torn_tail_repaired()) {
    // The daemon's own Log will not see the torn line: say it here, as it would.
    spdlog::warn("audit.log ended in a torn line (a crash mid-write); it was truncated away");
    nlohmann::ordered_json line = {
      {"action", "daemon_start"}, {"details", "repaired a torn last line in audit.log"}, {"success", false}};
    log.append(std::move(line));
  }
  for (auto& line : lines) {
    log.append(std::move(line));
  }
  log.wait_durable(log.last_seq());
}

// A daemon killed while it wrote the anchor leaves its temp file
// (util::AtomicFile's FILE.tmp.XXXXXXXX). We hold the pid lock: no writer runs.
void remove_stale_anchor_temps(const std::string& anchor_path)
{
  const std::string dir = util::dirname_of(anchor_path);
  const std::string prefix = anchor_path.substr(dir.size() + 1) + ".tmp.";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  for (const dirent* e = d ? ::readdir(d.get()) : nullptr; e; e = ::readdir(d.get())) {
    const std::string name = e->d_name;
    if (name.starts_with(prefix) && name.size() == prefix.size() + 8) {
      ::unlink((dir + "/" + name).c_str());
    }
  }
}

} // namespace

audit::Keying start_audit_chain(store::Store& store, const util::Paths& paths, const util::Clock& clock)
{
  audit::Keying keying;
  keying.anchor_path = audit::anchor_path_for(paths.audit);
  remove_stale_anchor_temps(keying.anchor_path);
  const audit::Head head = audit::read_head(paths.audit);

  if (const auto* stored = store.audit_key()) {
    keying.key = std::make_shared<const audit::Key>(stored->key.view());
    keying.first_seq = stored->first_seq;
    keying.earlier_key_lost = stored->earlier_key_lost;
    if (const auto problem = tampering(paths, keying, head)) {
      spdlog::error("audit log tampered with: {}", *problem);
      nlohmann::ordered_json line = {{"action", "audit_tampered"}, {"details", *problem}, {"success", false}};
      append_lines(paths, clock, keying, {std::move(line)});
    }
    return keying;
  }

  keying.key = std::make_shared<const audit::Key>(audit::Key::generate());
  keying.first_seq = head.seq + 1;
  // The last line of ours is neither plain nor Go: it was keyed under a key
  // that is gone (the store was wiped, or the Go daemon rewrote it).
  keying.earlier_key_lost = head.seq > 0 && audit::sha256_hex(head.body) != head.hash;
  std::string details = "a new audit key; lines from seq " + std::to_string(keying.first_seq) + " on are keyed";
  if (keying.earlier_key_lost) {
    details += "; lines before were keyed under a key that is gone (secrets.age was wiped or rewritten): "
               "verify can no longer check them";
  }
  nlohmann::ordered_json line = {
    {"action", "audit_key_created"}, {"details", details}, {"success", true}, {"first_seq", keying.first_seq}};
  append_lines(paths, clock, keying, {std::move(line)});
  // The anchor must exist before the key is stored (see audit_chain.hpp).
  if (const auto read = audit::read_anchor(keying.anchor_path, *keying.key);
      read.state != audit::AnchorRead::State::valid) {
    throw util::Error(util::Errc::io, "failed to anchor the audit log: " + read.problem,
                      "check the free space and permissions of " + paths.home);
  }
  store::AuditKey record;
  record.key = store::age::SecretBuffer(keying.key->bytes());
  record.first_seq = keying.first_seq;
  record.earlier_key_lost = keying.earlier_key_lost;
  record.created_at = clock.now();
  store.set_audit_key(std::move(record));
  return keying;
}

} // namespace server
