#pragma once
// leases.json: a snapshot of the live lease table, no secret values
//   {"version":1,"audit_seq":N,"leases":[{id,secret_name,client_id,created_at,expires_at,ttl,
//    bind_pid?,bind_start?}],"last_leased":{..},"files":{..}}
// The audit log is the write-ahead log: on start the daemon loads the
// snapshot, then replays the audit lines after audit_seq (DESIGN.md 5).
// The Go version's plain array (with "revoked") is read too.

#include "lease/table.hpp"

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

struct LeaseSnapshot
{
  uint64_t audit_seq = 0;
  std::vector<lease::Lease> leases;
  LastLeased last_leased;
  RegisteredFiles files;
};

// Throws util::Error naming the file and the fix when it cannot be parsed.
LeaseSnapshot read_leases_snapshot(const std::string& path);
void write_leases_snapshot(const std::string& path, uint64_t audit_seq, const std::vector<lease::Lease>& leases,
                           const LastLeased& last_leased, const RegisteredFiles& files);

// Applies the audit lines after snapshot.audit_seq to `table` and the indexes;
// returns how many were replayed.
size_t replay_audit(const std::string& audit_path, uint64_t after_seq, lease::Table& table, LastLeased& last_leased,
                    RegisteredFiles& files);

} // namespace server
