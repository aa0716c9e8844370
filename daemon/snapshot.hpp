#pragma once
// The lease table's snapshot, in two files (DESIGN.md sections 2, 5 and 16):
//   leases.json  Go's array, so that the Go daemon still starts on this home:
//                [{"id","secret_name","client_id","created_at","expires_at","revoked"}]
//   state.json   ours, beside it: {"version":1,"audit_seq":N,"taken_at":T,
//                "leases":{ID:{"ttl"?,"bind_pid"?,"bind_start"?,"placeholder_sha256"?}},
//                "last_leased":{NAME:T},"files":{PATH:[ID,...]}}
// The audit log is the write-ahead log: on start the daemon loads the
// snapshot, then replays the audit lines after audit_seq (DESIGN.md 5).
// Also read: Go's array with no state.json (a Go home), and the single
// leases.json object our previous version wrote ({"version":1,"audit_seq":N,
// "leases":[...],"last_leased":{..},"files":{..}}, each lease with its extras).
// Both files are written with util::write_file_atomic (0600, temp + fsync +
// rename + directory fsync); store::Store::open checks them for symlinks and
// permissions with the other files of the home.

#include "lease/table.hpp"
#include "util/paths.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace server {

// When each secret was last leased: the index `secrets health` reads, so it
// never scans the audit log.
using LastLeased = std::map<std::string, util::TimePoint>;
// .env files written by `secrets env`: path -> the leases that keep it alive.
using RegisteredFiles = std::map<std::string, std::set<std::string>>;

// What a snapshot holds. New members go at the end and into state.json (the
// writer and the reader are the two functions below); leases.json stays Go's.
struct LeaseSnapshot
{
  uint64_t audit_seq = 0;       // the last audit line the snapshot covers
  std::vector<lease::Lease> leases;
  LastLeased last_leased;
  RegisteredFiles files;
  util::TimePoint taken_at{};   // when the table was copied (leases created later are not in it)
};

// Reads leases.json and state.json and merges them (see snapshot.cpp for how
// each combination the two files can be found in is read). Throws util::Error
// naming the file and the fix when one cannot be parsed.
LeaseSnapshot read_lease_snapshot(const util::Paths& paths);
// Writes leases.json, then state.json (the order is what keeps a crash
// between the two safe; snapshot.cpp says why).
void write_lease_snapshot(const util::Paths& paths, const LeaseSnapshot& snapshot);

// Applies the audit lines after `after_seq` to `table` and the indexes;
// returns how many were replayed.
size_t replay_audit(const std::string& audit_path, uint64_t after_seq, lease::Table& table, LastLeased& last_leased,
                    RegisteredFiles& files);

} // namespace server
