// The lease table's start-up: read_lease_snapshot over hand-made leases.json
// and state.json (every combination snapshot.cpp names), then replay_audit of
// the audit lines after the snapshot's seq (the write-ahead log). Only the
// public functions of daemon/snapshot.hpp are used; the files are written
// here byte by byte, as the Go daemon, our previous version or a crash would
// leave them.
#include "audit/chain.hpp"
#include "daemon/snapshot.hpp"
#include "lease/table.hpp"
#include "temp_dir.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const util::TimePoint k_t0{std::chrono::seconds{1'700'000'000}};

std::string at(util::Duration offset)
{
  return util::format_rfc3339_nano(k_t0 + offset);
}

struct Home
{
  testutil::TempDir dir;
  util::Paths paths = util::paths_for(dir.path());
  util::FakeClock clock{k_t0 + 10min};
  int next_id = 0;
  lease::Table table{clock, [this] { return "made-" + std::to_string(++next_id); }};
  server::LastLeased last_leased;
  server::RegisteredFiles files;
  std::string audit_text;
  uint64_t seq = 0;

  void leases(const json& j) const { util::write_file_atomic(paths.leases, j.dump()); }
  void state(const json& j) const { util::write_file_atomic(paths.state, j.dump()); }

  // One of our audit lines: compact JSON with seq and prev, then the hash
  // member last, as audit::Log writes it (a plain line; replay reads no MAC).
  void line(json body)
  {
    json ordered = {{"seq", ++seq}, {"timestamp", at(std::chrono::seconds(seq))}, {"success", true}};
    ordered.update(body);
    ordered["prev"] = std::string(audit::k_genesis_prev);
    audit_text += audit::seal_line(ordered.dump()) + "\n";
  }
  // A line of the Go daemon: no seq and no hash.
  void go_line(const json& body) { audit_text += body.dump() + "\n"; }

  void acquire(const std::string& id, const std::string& name, util::Duration created, util::Duration expires,
               json extra = json::object())
  {
    json body = {{"action", "lease_acquire"}, {"lease_id", id},           {"secret_name", name},
                 {"client_id", "agent"},      {"created_at", at(created)}, {"expires_at", at(expires)}};
    body.update(extra);
    line(std::move(body));
  }

  size_t replay(uint64_t after_seq)
  {
    util::write_file_atomic(paths.audit, audit_text);
    return server::replay_audit(paths.audit, after_seq, table, last_leased, files);
  }

  // The snapshot read and put into the table, as the daemon's start does.
  server::LeaseSnapshot load()
  {
    auto snap = server::read_lease_snapshot(paths);
    for (const auto& l : snap.leases) {
      table.restore(l);
    }
    last_leased = snap.last_leased;
    files = snap.files;
    return snap;
  }

  std::vector<std::string> live() const
  {
    std::vector<std::string> ids;
    for (const auto& l : table.snapshot()) {
      ids.push_back(l.id);
    }
    return ids;
  }
};

json go_lease(const std::string& id, const std::string& name, util::Duration created, util::Duration expires,
              bool revoked = false)
{
  return {{"id", id},
          {"secret_name", name},
          {"client_id", "agent"},
          {"created_at", at(created)},
          {"expires_at", at(expires)},
          {"revoked", revoked}};
}

util::Error thrown(auto f)
{
  try {
    f();
  } catch (const util::Error& e) {
    return e;
  }
  FAIL("expected util::Error");
  return util::Error(util::Errc::internal, "unreachable");
}

} // namespace

TEST_CASE("snapshot: nothing on disk is an empty table that replays every line")
{
  Home h;
  const auto snap = h.load();
  CHECK(snap.audit_seq == 0);
  CHECK(snap.leases.empty());
  CHECK(h.replay(0) == 0); // no audit.log either
  CHECK(h.table.size() == 0);
}

TEST_CASE("snapshot: a Go home (its array, no state.json) keeps the live leases and replays all of ours")
{
  Home h;
  h.leases(json::array({go_lease("g1", "api", 0s, 1h), go_lease("g2", "api", 0s, 1h, true)}));
  const auto snap = h.load();
  CHECK(snap.audit_seq == 0);
  REQUIRE(snap.leases.size() == 1); // the Go daemon keeps revoked leases in its array, marked
  CHECK(snap.leases[0].id == "g1");
  CHECK(snap.leases[0].ttl == util::Duration::zero()); // not in the file: restore() derives it
  REQUIRE(h.table.find("g1") != nullptr);
  CHECK(h.table.find("g1")->ttl == 1h); // from the two times
  CHECK(h.table.find("g2") == nullptr);
  // Go writes `null` for no leases.
  util::write_file_atomic(h.paths.leases, "null");
  CHECK(server::read_lease_snapshot(h.paths).leases.empty());
}

TEST_CASE("snapshot: state.json's extras go onto leases.json's leases, and replay starts after its seq")
{
  Home h;
  h.leases(json::array({go_lease("a", "api", 0s, 1h), go_lease("b", "db", 1s, 2h)}));
  h.state({{"version", 1},
           {"audit_seq", 7},
           {"taken_at", at(5min)},
           {"leases",
            {{"a", {{"ttl", "30m0s"}, {"bind_pid", 4242}, {"bind_start", 99}}},
             {"b", {{"placeholder_sha256", std::string(64, 'c')}}}}},
           {"last_leased", {{"api", at(0s)}, {"db", at(1s)}}},
           {"files", {{"/tmp/x.env", {"a", "b"}}}}});
  const auto snap = h.load();
  CHECK(snap.audit_seq == 7);
  REQUIRE(snap.leases.size() == 2);
  const auto& a = snap.leases[0].id == "a" ? snap.leases[0] : snap.leases[1];
  const auto& b = snap.leases[0].id == "a" ? snap.leases[1] : snap.leases[0];
  CHECK(a.ttl == 30min); // renewed: not expires_at - created_at
  CHECK(a.bind_pid == 4242);
  CHECK(a.bind_start == 99);
  CHECK(b.placeholder_sha256 == std::string(64, 'c'));
  CHECK(b.bind_pid == 0);
  CHECK(snap.last_leased.at("db") == k_t0 + 1s);
  CHECK(snap.files.at("/tmp/x.env") == std::set<std::string>{"a", "b"});
}

TEST_CASE("snapshot: a lease state.json does not know is kept if newer than it, dropped if older")
{
  Home h;
  // "new": acquired after state.json was taken (a crash between the two
  // writes, or the Go daemon ran here since). "gone": created before it, so
  // it had ended when state.json was taken (leases.json restored from a backup).
  h.leases(json::array({go_lease("known", "api", 0s, 1h), go_lease("new", "api", 6min, 1h),
                        go_lease("gone", "api", 1min, 1h)}));
  h.state({{"version", 1}, {"audit_seq", 3}, {"taken_at", at(5min)}, {"leases", {{"known", json::object()}}}});
  h.load();
  CHECK(h.live() == std::vector<std::string>{"known", "new"});
}

TEST_CASE("snapshot: state.json without leases.json keeps its indexes and rebuilds the table from every line")
{
  Home h;
  h.state({{"version", 1},
           {"audit_seq", 2},
           {"taken_at", at(5min)},
           {"leases", {{"a", json::object()}}},
           {"last_leased", {{"api", at(0s)}}}});
  h.acquire("a", "api", 0s, 1h);
  h.acquire("b", "db", 1s, 1h);
  const auto snap = h.load();
  CHECK(snap.audit_seq == 0); // leases.json was moved away: replay from the start
  CHECK(snap.leases.empty());
  CHECK(snap.last_leased.count("api") == 1);
  CHECK(h.replay(snap.audit_seq) == 2);
  CHECK(h.live() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("snapshot: our previous version's single leases.json object is read whole; a state.json beside it is older")
{
  Home h;
  json old_lease = go_lease("a", "api", 0s, 1h);
  old_lease["bind_pid"] = 7;
  old_lease["bind_start"] = 8;
  h.leases({{"version", 1},
            {"audit_seq", 12},
            {"leases", json::array({old_lease})},
            {"last_leased", {{"api", at(0s)}}},
            {"files", {{"/tmp/y.env", {"a"}}}}});
  h.state({{"version", 1}, {"audit_seq", 99}, {"leases", json::object()}});
  const auto snap = h.load();
  CHECK(snap.audit_seq == 12);
  REQUIRE(snap.leases.size() == 1);
  CHECK(snap.leases[0].bind_pid == 7);
  CHECK(snap.leases[0].bind_start == 8);
  CHECK(snap.files.at("/tmp/y.env") == std::set<std::string>{"a"});
}

TEST_CASE("snapshot: a file that cannot be read stops the start with the file's name and the fix")
{
  Home h;
  util::write_file_atomic(h.paths.leases, "[{\"id\":");
  auto e = thrown([&] { server::read_lease_snapshot(h.paths); });
  CHECK(e.code() == util::Errc::io);
  CHECK(std::string(e.what()) == h.paths.leases + " is not valid JSON");
  CHECK(e.fix().starts_with("mv " + h.paths.leases + " " + h.paths.leases + ".bad"));

  util::write_file_atomic(h.paths.leases, "\"a string\"");
  CHECK(std::string(thrown([&] { server::read_lease_snapshot(h.paths); }).what()).find("neither a lease array")
        != std::string::npos);

  h.leases(json::array({{{"id", "a"}, {"secret_name", "api"}, {"created_at", "yesterday"}, {"expires_at", at(1h)}}}));
  CHECK(std::string(thrown([&] { server::read_lease_snapshot(h.paths); }).what()).find("bad time in created_at")
        != std::string::npos);

  h.leases(json::array());
  h.state({{"version", 1}, {"leases", json::object()}}); // no audit_seq
  e = thrown([&] { server::read_lease_snapshot(h.paths); });
  CHECK(std::string(e.what()).find("is not our lease state") != std::string::npos);
  CHECK(e.fix().starts_with("mv " + h.paths.state + " " + h.paths.state + ".bad"));
}

TEST_CASE("snapshot: replay applies our lines after the snapshot's seq, in order, and skips the rest")
{
  Home h;
  h.leases(json::array({go_lease("old", "api", 0s, 1h)}));
  h.state({{"version", 1}, {"audit_seq", 2}, {"taken_at", at(1min)}, {"leases", {{"old", json::object()}}}});
  h.acquire("old", "api", 0s, 1h);                   // seq 1: in the snapshot already
  h.line({{"action", "lease_revoke"}, {"lease_id", "x"}}); // seq 2: in the snapshot already
  h.go_line({{"action", "lease_acquire"}, {"lease_id", "go"}, {"secret_name", "api"}, {"success", true}});
  h.acquire("a", "api", 2min, 1h, {{"bind_pid", 11}, {"bind_start", 12}}); // 3
  h.acquire("b", "db", 3min, 1h);                                           // 4
  h.acquire("c", "db", 4min, 1h);                                           // 5
  h.line({{"action", "lease_renew"}, {"lease_id", "a"}, {"expires_at", at(2h)}});             // 6
  h.line({{"action", "lease_revoke"}, {"lease_id", "b"}});                                     // 7
  h.line({{"action", "lease_expire"}, {"lease_id", "old"}});                                   // 8
  h.line({{"action", "lease_acquire"}, {"lease_id", "failed"}, {"secret_name", "api"},         // 9: not done
          {"created_at", at(5min)}, {"expires_at", at(1h)}, {"success", false}});
  h.line({{"action", "lease_acquire"}, {"lease_id", "no-expiry"}, {"secret_name", "api"}});    // 10: unreadable
  h.line({{"action", "env_file_registered"}, {"path", "/tmp/a.env"}, {"lease_ids", {"a", "c"}}}); // 11
  h.line({{"action", "env_file_registered"}, {"path", "/tmp/b.env"}, {"lease_ids", {"c"}}});      // 12
  h.line({{"action", "env_file_removed"}, {"path", "/tmp/b.env"}});                               // 13
  h.line({{"action", "secret_get"}, {"secret_name", "api"}});                                     // 14: not a table change
  h.line({{"action", "secret_delete"}, {"secret_name", "db"}});                                   // 15

  const auto snap = h.load();
  REQUIRE(snap.audit_seq == 2);
  CHECK(h.replay(snap.audit_seq) == 10); // 3-8 and 11-13, 15
  CHECK(h.live() == std::vector<std::string>{"a", "c"});
  const auto* a = h.table.find("a");
  REQUIRE(a != nullptr);
  CHECK(a->expires_at == k_t0 + 2h);
  CHECK(a->ttl == 1h - 2min); // as acquired: a renewal does not change it
  CHECK(a->bind_pid == 11);
  CHECK(a->bind_start == 12);
  CHECK(h.table.find("go") == nullptr);
  // An id ended by a replayed line reads as ended, not unknown.
  CHECK(thrown([&] { h.table.revoke("b"); }).code() == lease::errc::ended);
  CHECK(thrown([&] { h.table.revoke("old"); }).code() == lease::errc::ended);
  CHECK(h.files == server::RegisteredFiles{{"/tmp/a.env", {"a", "c"}}});
  CHECK(h.last_leased.count("api") == 1);
  CHECK(h.last_leased.count("db") == 0); // the secret was deleted
  CHECK(h.last_leased.at("api") == k_t0 + 2min);
}

TEST_CASE("snapshot: a killswitch line ends every lease before it; acquires after it stand")
{
  Home h;
  h.acquire("a", "api", 0s, 1h);
  h.acquire("b", "api", 1s, 1h);
  h.line({{"action", "killswitch"}, {"revoked", 2}});
  h.acquire("c", "api", 2s, 1h);
  CHECK(h.replay(0) == 4);
  CHECK(h.live() == std::vector<std::string>{"c"});
}

TEST_CASE("snapshot: written, read back and replayed over the lines it already covers, the table is the same")
{
  // The crash between the two writes: leases.json new, state.json one seq
  // behind. Replaying from state.json's seq repeats what the table shows.
  Home h;
  h.acquire("a", "api", 0s, 1h, {{"bind_pid", 5}, {"bind_start", 6}});
  h.acquire("b", "db", 1s, 1h, {{"placeholder_sha256", std::string(64, 'f')}});
  h.line({{"action", "lease_renew"}, {"lease_id", "b"}, {"expires_at", at(3h)}});
  REQUIRE(h.replay(0) == 3);
  const auto before = h.table.snapshot();

  server::LeaseSnapshot snap;
  snap.audit_seq = 1; // state.json older than the table
  snap.leases = before;
  snap.last_leased = h.last_leased;
  snap.taken_at = k_t0 + 2s;
  server::write_lease_snapshot(h.paths, snap);

  Home restarted;
  restarted.paths = h.paths;
  restarted.audit_text = h.audit_text;
  const auto read = restarted.load();
  CHECK(read.audit_seq == 1);
  restarted.replay(read.audit_seq);
  const auto after = restarted.table.snapshot();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    CAPTURE(after[i].id);
    CHECK(after[i].id == before[i].id);
    CHECK(after[i].secret_name == before[i].secret_name);
    CHECK(after[i].created_at == before[i].created_at);
    CHECK(after[i].expires_at == before[i].expires_at);
    CHECK(after[i].bind_pid == before[i].bind_pid);
    CHECK(after[i].bind_start == before[i].bind_start);
    CHECK(after[i].placeholder_sha256 == before[i].placeholder_sha256);
  }
  CHECK(restarted.last_leased == h.last_leased);
}
