#pragma once
// `secrets audit --verify`: one pass over audit.log with constant memory.
//
// What it proves, with the key (the daemon holds it; it is in secrets.age):
//  - no keyed line was edited, deleted, inserted or reordered by someone
//    without the key (each MAC covers its line and, through prev, the one
//    before it);
//  - no line from the key's first keyed seq on was replaced by an unkeyed
//    one, and the unkeyed lines before it (plain SHA-256 and Go lines) were
//    not edited or reordered without also breaking the first keyed line;
//  - no cut below an anchor: the file still holds the anchored line (the
//    anchor file's, MAC'd under the key, and the running daemon's durable head);
//  - the daemon found no cut when it started (an `audit_tampered` line).
// What it cannot prove:
//  - anything about lines after the last anchor that someone cut off while
//    the daemon was stopped (at most the last k_file_interval of lines; the
//    journal or syslog has a copy of the head every 10 s);
//  - anything against someone who can decrypt secrets.age (the same user,
//    who can read identity.age) and so holds the key;
//  - the content of lines keyed under a key that is gone (the store was
//    wiped or rewritten by the Go daemon): counted, not checked.
// Without the key (no daemon) only the structure is checked: plain lines'
// hashes, prev links, seq; keyed lines' MACs are counted as unchecked.

#include "audit/anchor.hpp"
#include "audit/key.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace audit {

struct VerifyOptions
{
  // The key of the keyed lines; null: the structure only.
  std::shared_ptr<const Key> key;
  // With a key: lines from this seq on must be keyed under it; lines before
  // it must be plain or Go lines...
  uint64_t key_first_seq = 1;
  // ...unless an earlier key was lost: then a line before key_first_seq that
  // is not plain is one keyed under that key, counted as unchecked.
  bool earlier_key_lost = false;
  // With a key: the anchor file to check (empty: none).
  std::string anchor_path;
  // The running daemon's durable head (seq 0: none).
  Anchor live_head;
};

struct VerifyResult
{
  bool ok = true;
  // Complete lines accepted before the first bad one (Go lines included).
  uint64_t entries = 0;
  // Lines whose MAC was checked under the key.
  uint64_t keyed_entries = 0;
  // Plain SHA-256 lines and Go lines: readable and chained, but anyone who
  // can write the file could have rewritten them (until a keyed line follows).
  uint64_t unkeyed_entries = 0;
  // Of unkeyed_entries: Go lines, which carry no chain at all.
  uint64_t legacy_entries = 0;
  // Keyed lines whose MAC was not checked: no key, or one that is gone.
  uint64_t unchecked_entries = 0;
  bool macs_checked = false;
  // The anchors the file was checked against.
  std::optional<Anchor> anchor;    // audit.anchor
  std::optional<Anchor> live_head; // the daemon's durable head
  std::optional<uint64_t> first_bad_line; // 1-based
  std::string message;
  // The file ends with bytes that are not a complete line: a crash mid-write
  // (Log repairs it on open), or a batch being written at this instant. Not a
  // chain break: those bytes are never an entry, so ok stays true.
  bool torn_tail = false;
};

// Walks the chain and reports the first broken line: unparsable, edited
// (hash or MAC), deleted, inserted or reordered (prev), bad seq, an unkeyed
// line where keyed ones are required, a line without hash after the chain
// has started, a cut below an anchor, or an audit_tampered line. A missing
// file is an empty, valid log (unless an anchor says otherwise).
// Throws util::Error (Errc::io) if the file cannot be read.
VerifyResult verify_file(const std::string& path, const VerifyOptions& options = {});

// The result as secrets.verifyAudit and `secrets audit --verify --offline`
// report it: ok, entries, message, the counts, macs_checked, and
// first_bad_line, torn_tail, anchor and live_head when set.
nlohmann::json to_json(const VerifyResult& result);

} // namespace audit
