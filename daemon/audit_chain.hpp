#pragma once
// Keys the audit chain when the daemon starts (DESIGN.md section 6), before
// the daemon's Log opens.
//
// - No key in the store (a new home, one from before the chain was keyed, a
//   Go-made or wiped one): makes one, writes `audit_key_created` as its first
//   keyed line (through a short-lived Log, which also anchors it), and only
//   then stores the key in secrets.age. So a key in the store always means
//   that its first keyed line and an anchor were on disk: a crash in between
//   leaves a line keyed under a key that never got stored, which the next
//   start counts as keyed under a lost key, never as tampering.
// - A key in the store: checks audit.anchor against the file. A missing or
//   forged anchor, a log that ends before the anchored seq or before the
//   key's first keyed line, or an anchored line with another hash is written
//   as an `audit_tampered` line (success false), keyed, so that every later
//   verify reports it: the daemon goes on (the log is evidence, not a lock),
//   but it never heals a cut quietly by anchoring the shorter log.
//
// Returns the Log's keying. Throws util::Error when the store cannot be
// written or the log not read.

#include "audit/log.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/paths.hpp"

namespace server {

audit::Keying start_audit_chain(store::Store& store, const util::Paths& paths, const util::Clock& clock);

} // namespace server
