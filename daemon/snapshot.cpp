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

// The holder of a bound lease and a proxy lease's placeholder hash, in
// leases.json and in lease_acquire audit lines.
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
                        "mv " + path + " " + path + ".bad  # leases are then rebuilt from audit.log");
    }
    return it->get<std::string>();
  };
  auto time = [&](const char* field) {
    const auto t = util::parse_rfc3339(text(field));
    if (!t) {
      throw util::Error(util::Errc::io, path + ": a lease has a bad time in " + field,
                        "mv " + path + " " + path + ".bad  # leases are then rebuilt from audit.log");
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

} // namespace

LeaseSnapshot read_leases_snapshot(const std::string& path)
{
  LeaseSnapshot snap;
  const auto text = util::read_file_if_exists(path);
  if (!text) {
    return snap;
  }
  json doc;
  try {
    doc = json::parse(*text);
  } catch (const json::exception&) {
    throw util::Error(util::Errc::io, path + " is not valid JSON",
                      "mv " + path + " " + path + ".bad  # leases are then rebuilt from audit.log");
  }
  const json* list = nullptr;
  if (doc.is_array()) {
    list = &doc; // the Go version's format
  } else if (doc.is_object()) {
    snap.audit_seq = doc.value("audit_seq", uint64_t{0});
    if (doc.contains("files") && doc["files"].is_object()) {
      for (const auto& [file, ids] : doc["files"].items()) {
        for (const auto& id : ids) {
          if (id.is_string()) {
            snap.files[file].insert(id.get<std::string>());
          }
        }
      }
    }
    if (doc.contains("last_leased") && doc["last_leased"].is_object()) {
      for (const auto& [name, when] : doc["last_leased"].items()) {
        if (const auto t = when.is_string() ? util::parse_rfc3339(when.get<std::string>()) : std::nullopt) {
          snap.last_leased[name] = *t;
        }
      }
    }
    if (doc.contains("leases") && doc["leases"].is_array()) {
      list = &doc["leases"];
    }
  } else if (!doc.is_null()) { // Go writes `null` for no leases
    throw util::Error(util::Errc::io, path + " is neither a lease array nor a snapshot object",
                      "mv " + path + " " + path + ".bad");
  }
  if (list) {
    for (const auto& item : *list) {
      if (item.is_object() && item.value("revoked", false)) {
        continue;
      }
      snap.leases.push_back(lease_from_json(item, path));
    }
  }
  return snap;
}

void write_leases_snapshot(const std::string& path, uint64_t audit_seq, const std::vector<lease::Lease>& leases,
                           const LastLeased& last_leased, const RegisteredFiles& files)
{
  json list = json::array();
  for (const auto& l : leases) {
    json item = {{"id", l.id},
                 {"secret_name", l.secret_name},
                 {"client_id", l.client_id},
                 {"created_at", util::format_rfc3339_nano(l.created_at)},
                 {"expires_at", util::format_rfc3339_nano(l.expires_at)},
                 {"ttl", util::format_duration(l.ttl)}};
    if (l.bind_pid != 0) {
      item["bind_pid"] = l.bind_pid;
      item["bind_start"] = l.bind_start;
    }
    if (!l.placeholder_sha256.empty()) {
      item["placeholder_sha256"] = l.placeholder_sha256;
    }
    list.push_back(std::move(item));
  }
  json last = json::object();
  for (const auto& [name, when] : last_leased) {
    last[name] = util::format_rfc3339_nano(when);
  }
  json registered = json::object();
  for (const auto& [file, ids] : files) {
    registered[file] = ids;
  }
  const json doc = {{"version", 1},
                    {"audit_seq", audit_seq},
                    {"leases", std::move(list)},
                    {"last_leased", std::move(last)},
                    {"files", std::move(registered)}};
  util::write_file_atomic(path, doc.dump(2) + "\n");
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
