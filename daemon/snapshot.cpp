#include "daemon/snapshot.hpp"

#include "audit/log.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/duration.hpp"
#include "util/time.hpp"

#include <nlohmann/json.hpp>

namespace server {

namespace {

using nlohmann::json;

constexpr const char* k_rebuild = "  # leases are then rebuilt from audit.log";

// The holder of a bound lease and a proxy lease's placeholder hash, in
// state.json, in lease_acquire audit lines, and in our previous version's
// leases.json.
void read_binding(const json& j, lease::Lease& l)
{
  const auto pid = j.find("bind_pid");
  const auto start = j.find("bind_start");
  if (pid != j.end() && pid->is_number_integer() && start != j.end() && start->is_number_unsigned()) {
    l.bind_pid = pid->get<int>();
    l.bind_start = start->get<uint64_t>();
  }
  if (const auto it = j.find("placeholder_sha256"); it != j.end() && it->is_string()) {
    l.placeholder_sha256 = it->get<std::string>();
  }
}

lease::Lease lease_from_json(const json& j, const std::string& path)
{
  lease::Lease l;
  auto text = [&](const char* field) -> std::string {
    const auto it = j.find(field);
    if (it == j.end() || !it->is_string()) {
      throw util::Error(util::Errc::io, path + ": a lease lacks the string field " + field,
                        "mv " + path + " " + path + ".bad" + k_rebuild);
    }
    return it->get<std::string>();
  };
  auto time = [&](const char* field) {
    const auto t = util::parse_rfc3339(text(field));
    if (!t) {
      throw util::Error(util::Errc::io, path + ": a lease has a bad time in " + field,
                        "mv " + path + " " + path + ".bad" + k_rebuild);
    }
    return *t;
  };
  l.id = text(j.contains("lease_id") ? "lease_id" : "id");
  l.secret_name = text("secret_name");
  l.client_id = j.contains("client_id") && j["client_id"].is_string() ? j["client_id"].get<std::string>() : "";
  l.created_at = time("created_at");
  l.expires_at = time("expires_at");
  read_binding(j, l);
  if (const auto it = j.find("ttl"); it != j.end() && it->is_string()) {
    l.ttl = util::parse_duration(it->get<std::string>()).value_or(util::Duration::zero());
  }
  return l;
}

json parse_file(const std::string& path, const std::string& text)
{
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    throw util::Error(util::Errc::io, path + " is not valid JSON", "mv " + path + " " + path + ".bad" + k_rebuild);
  }
}

void read_indexes(const json& doc, LastLeased& last_leased, RegisteredFiles& files)
{
  if (doc.contains("files") && doc["files"].is_object()) {
    for (const auto& [file, ids] : doc["files"].items()) {
      for (const auto& id : ids) {
        if (id.is_string()) {
          files[file].insert(id.get<std::string>());
        }
      }
    }
  }
  if (doc.contains("last_leased") && doc["last_leased"].is_object()) {
    for (const auto& [name, when] : doc["last_leased"].items()) {
      if (const auto t = when.is_string() ? util::parse_rfc3339(when.get<std::string>()) : std::nullopt) {
        last_leased[name] = *t;
      }
    }
  }
}

// The leases of a Go array (or of our previous version's "leases" member);
// the Go daemon kept revoked leases in it, marked so.
std::vector<lease::Lease> leases_from_list(const json& list, const std::string& path)
{
  std::vector<lease::Lease> out;
  for (const auto& item : list) {
    if (item.is_object() && item.value("revoked", false)) {
      continue;
    }
    out.push_back(lease_from_json(item, path));
  }
  return out;
}

// state.json's view of the table: the extras of every lease it covers.
struct StateFile
{
  uint64_t audit_seq = 0;
  std::optional<util::TimePoint> taken_at;
  std::map<std::string, json> leases;
  LastLeased last_leased;
  RegisteredFiles files;
};

StateFile read_state_file(const std::string& path, const std::string& text)
{
  json doc;
  const std::string fix = "mv " + path + " " + path + ".bad  # then rebuilt from leases.json and audit.log";
  try {
    doc = json::parse(text);
  } catch (const json::exception&) {
    throw util::Error(util::Errc::io, path + " is not valid JSON", fix);
  }
  if (!doc.is_object() || !doc.contains("audit_seq") || !doc["audit_seq"].is_number_unsigned()
      || (doc.contains("leases") && !doc["leases"].is_object())) {
    throw util::Error(util::Errc::io, path + " is not our lease state (an object with audit_seq and leases)", fix);
  }
  StateFile state;
  state.audit_seq = doc["audit_seq"].get<uint64_t>();
  if (const auto it = doc.find("taken_at"); it != doc.end() && it->is_string()) {
    state.taken_at = util::parse_rfc3339(it->get<std::string>());
  }
  if (doc.contains("leases")) {
    for (const auto& [id, extras] : doc["leases"].items()) {
      state.leases.emplace(id, extras.is_object() ? extras : json::object());
    }
  }
  read_indexes(doc, state.last_leased, state.files);
  return state;
}

json go_leases(const std::vector<lease::Lease>& leases)
{
  // Exactly the Go daemon's types.Lease: it decodes leases.json into
  // []*types.Lease and refuses to start on anything else.
  json list = json::array();
  for (const auto& l : leases) {
    list.push_back({{"id", l.id},
                    {"secret_name", l.secret_name},
                    {"client_id", l.client_id},
                    {"created_at", util::format_rfc3339_nano(l.created_at)},
                    {"expires_at", util::format_rfc3339_nano(l.expires_at)},
                    {"revoked", false}});
  }
  return list;
}

json state_document(const LeaseSnapshot& snap)
{
  json leases = json::object();
  for (const auto& l : snap.leases) {
    // Every lease has an entry, extras or not: the set of ids says which
    // leases this file covers (read_lease_snapshot relies on it).
    json extras = json::object();
    if (l.ttl != l.expires_at - l.created_at) { // renewed; else restore() derives it
      extras["ttl"] = util::format_duration(l.ttl);
    }
    if (l.bind_pid != 0) {
      extras["bind_pid"] = l.bind_pid;
      extras["bind_start"] = l.bind_start;
    }
    if (!l.placeholder_sha256.empty()) {
      extras["placeholder_sha256"] = l.placeholder_sha256;
    }
    leases[l.id] = std::move(extras);
  }
  json last = json::object();
  for (const auto& [name, when] : snap.last_leased) {
    last[name] = util::format_rfc3339_nano(when);
  }
  json registered = json::object();
  for (const auto& [file, ids] : snap.files) {
    registered[file] = ids;
  }
  return {{"version", 1},
          {"audit_seq", snap.audit_seq},
          {"taken_at", util::format_rfc3339_nano(snap.taken_at)},
          {"leases", std::move(leases)},
          {"last_leased", std::move(last)},
          {"files", std::move(registered)}};
}

} // namespace

// The two files can be found in these combinations:
// - both, written together: state.json's extras go onto leases.json's leases,
//   and replay starts after state.json's audit_seq.
// - leases.json newer than state.json: a crash between the two writes (see
//   write_lease_snapshot), or the Go daemon ran here after us. The same merge and
//   replay are right: the replay repeats what leases.json already shows.
//   A lease state.json does not know was acquired after it (by us: the replay
//   has its line; or by the Go daemon: nothing else has it) and is kept.
// - leases.json older than state.json: never written so, but a file restored
//   from a backup would be. A lease that state.json does not know although it
//   was created before state.json was taken had ended by then: it is dropped,
//   never brought back. (Leases acquired between the two are lost: a holder
//   must lease again, which is the safe way to be wrong.)
// - no state.json: a Go home (or state.json was moved away): leases.json
//   alone, and replay of every line of ours.
// - no leases.json beside a state.json: it was moved away (as our own fix for
//   a corrupt one says): the table is rebuilt from every line of the audit log.
// - leases.json is an object: our previous version's single file, with
//   everything in it. That version wrote no state.json, so one found beside it
//   is older and is ignored.
LeaseSnapshot read_lease_snapshot(const util::Paths& paths)
{
  LeaseSnapshot snap;
  const auto leases_text = util::read_file_if_exists(paths.leases);
  const json leases_doc = leases_text ? parse_file(paths.leases, *leases_text) : json();
  if (leases_doc.is_object()) {
    snap.audit_seq = leases_doc.value("audit_seq", uint64_t{0});
    read_indexes(leases_doc, snap.last_leased, snap.files);
    if (leases_doc.contains("leases") && leases_doc["leases"].is_array()) {
      snap.leases = leases_from_list(leases_doc["leases"], paths.leases);
    }
    return snap;
  }
  if (!leases_doc.is_array() && !leases_doc.is_null()) { // Go writes `null` for no leases
    throw util::Error(util::Errc::io, paths.leases + " is neither a lease array nor a snapshot object",
                      "mv " + paths.leases + " " + paths.leases + ".bad" + k_rebuild);
  }
  std::vector<lease::Lease> listed = leases_doc.is_array() ? leases_from_list(leases_doc, paths.leases)
                                                           : std::vector<lease::Lease>{};
  const auto state_text = util::read_file_if_exists(paths.state);
  if (!state_text) {
    snap.leases = std::move(listed);
    return snap;
  }
  StateFile state = read_state_file(paths.state, *state_text);
  snap.last_leased = std::move(state.last_leased);
  snap.files = std::move(state.files);
  if (!leases_text) {
    return snap; // audit_seq 0: every line is replayed
  }
  snap.audit_seq = state.audit_seq;
  for (auto& l : listed) {
    const auto extras = state.leases.find(l.id);
    if (extras != state.leases.end()) {
      read_binding(extras->second, l);
      if (const auto it = extras->second.find("ttl"); it != extras->second.end() && it->is_string()) {
        l.ttl = util::parse_duration(it->get<std::string>()).value_or(l.ttl);
      }
    } else if (state.taken_at && l.created_at < *state.taken_at) {
      continue;
    }
    snap.leases.push_back(std::move(l));
  }
  return snap;
}

void write_lease_snapshot(const util::Paths& paths, const LeaseSnapshot& snap)
{
  // leases.json first, state.json second. A crash between the two leaves a
  // leases.json newer than state.json, and the restore replays the audit
  // from state.json's older audit_seq onto that newer table, which comes out
  // right because replay only repeats what the table already shows: an
  // acquire puts the same lease back, an end forgets a lease already gone, a
  // renew sets the same expiry, a killswitch line ends every lease and the
  // acquires after it (all in the replayed range) bring back those that
  // followed it. The other order would leave a state.json whose audit_seq is
  // past leases that the old leases.json lacks: never replayed, they would be
  // lost. write_file_atomic syncs leases.json and its directory before
  // state.json is begun, so the disk cannot reorder the two either.
  util::write_file_atomic(paths.leases, go_leases(snap.leases).dump(2) + "\n");
  util::write_file_atomic(paths.state, state_document(snap).dump(2) + "\n");
}

size_t replay_audit(const std::string& audit_path, uint64_t after_seq, lease::Table& table, LastLeased& last_leased,
                    RegisteredFiles& files)
{
  size_t replayed = 0;
  for (const auto& entry : audit::read_after(audit_path, after_seq)) {
    const std::string action = entry.value("action", "");
    if (!entry.value("success", false)) {
      continue;
    }
    const std::string id = entry.contains("lease_id") && entry["lease_id"].is_string() ? entry["lease_id"].get<std::string>() : "";
    if (action == "lease_acquire" && !id.empty()) {
      lease::Lease l;
      l.id = id;
      l.secret_name = entry.value("secret_name", "");
      l.client_id = entry.value("client_id", "");
      const auto created = util::parse_rfc3339(entry.value("created_at", entry.value("timestamp", "")));
      const auto expires = util::parse_rfc3339(entry.value("expires_at", ""));
      if (!created || !expires) {
        continue;
      }
      l.created_at = *created;
      l.expires_at = *expires;
      read_binding(entry, l);
      last_leased[l.secret_name] = *created;
      table.restore(std::move(l));
    } else if (action == "lease_renew" && table.find(id)) {
      const auto expires = util::parse_rfc3339(entry.value("expires_at", ""));
      if (!expires) {
        continue;
      }
      lease::Lease l = *table.find(id);
      l.expires_at = *expires;
      table.restore(std::move(l));
    } else if ((action == "lease_revoke" || action == "lease_expire" || action == "lease_end") && !id.empty()) {
      table.forget(id, action == "lease_expire" ? lease::EndReason::expired : lease::EndReason::revoked);
    } else if (action == "env_file_registered" && entry.contains("path") && entry.contains("lease_ids")) {
      auto& ids = files[entry.value("path", "")];
      ids.clear();
      for (const auto& lease_id : entry["lease_ids"]) {
        if (lease_id.is_string()) {
          ids.insert(lease_id.get<std::string>());
        }
      }
    } else if (action == "env_file_removed" && entry.contains("path")) {
      files.erase(entry.value("path", ""));
    } else if (action == "secret_delete") {
      last_leased.erase(entry.value("secret_name", ""));
    } else if (action == "killswitch") {
      table.revoke_all();
    } else {
      continue;
    }
    ++replayed;
  }
  return replayed;
}

} // namespace server
