// The leases of `secrets exec`: taking them, watching them, renewing them,
// giving them back (cmd/exec.hpp).
#include "cmd/exec.hpp"

#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cstdio>

extern char** environ;

namespace cmd {

std::vector<HeldLease> take_leases(const Project& project, const ExecOptions& o, const std::string& client_id)
{
  std::vector<HeldLease> held;
  held.reserve(project.secrets.size()); // no reallocation leaving unwiped copies
  try {
    rpc::Client client(socket_path());
    for (const auto& ref : project.secrets) {
      const std::string ttl = !o.ttl.empty() ? o.ttl : ref.ttl;
      json params = {{"secret_name", ref.name}, {"client_id", client_id}, {"ttl", ttl}};
      add_binding(params, "self"); // if we die, even by SIGKILL, the leases end
      const auto asked = ExecClock::now();
      json result = client.call("secrets.lease", params);
      auto& value = result["value"].get_ref<std::string&>();
      HeldLease& h = held.emplace_back();
      h.lease_id = result.value("lease_id", "");
      h.ttl = util::parse_duration(result.value("ttl", "")).value_or(util::Duration::zero());
      const auto expires = util::parse_rfc3339(result.value("expires_at", ""));
      const auto max_expires = util::parse_rfc3339(result.value("max_expires_at", ""));
      h.cap = asked + h.ttl + (expires && max_expires ? *max_expires - *expires : util::Duration::zero());
      h.name = ref.name;
      h.env_var = ref.env_var;
      h.value = value; // copied in place: no temporary left unwiped
      util::wipe(value);
    }
  } catch (...) {
    revoke_all(held);
    wipe_all(held);
    throw;
  }
  return held;
}

void revoke_all(const std::vector<HeldLease>& held)
{
  if (held.empty()) {
    return;
  }
  try {
    rpc::Client client(socket_path());
    for (const auto& h : held) {
      try {
        client.call("secrets.revoke", {{"lease_id", h.lease_id}});
      } catch (const rpc::RemoteError&) {
        // already ended
      }
    }
  } catch (...) {
    // best effort: the leases expire on their own
  }
}

void wipe_all(std::vector<HeldLease>& held)
{
  for (auto& h : held) {
    util::wipe(h.value);
  }
}

std::vector<std::string> child_environment(const std::vector<HeldLease>& held)
{
  size_t count = held.size();
  for (char** e = environ; *e != nullptr; ++e) {
    ++count;
  }
  std::vector<std::string> env;
  env.reserve(count); // no reallocation leaving unwiped copies of values
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& h : held) {
      overridden = overridden || key == h.env_var;
    }
    if (!overridden) {
      env.emplace_back(entry);
    }
  }
  for (const auto& h : held) {
    env.push_back(h.env_var + "=" + h.value);
  }
  return env;
}

int exit_for_reason(const std::string& reason)
{
  if (reason == "revoked" || reason == "killswitch" || reason == "secret_deleted") {
    return exit_code::denied;
  }
  return exit_code::error;
}

LeaseWatch::LeaseWatch(const std::vector<HeldLease>& held) : m_held(held)
{
  json ids = json::array();
  for (const auto& h : m_held) {
    ids.push_back(h.lease_id);
  }
  m_client = std::make_unique<rpc::Client>(socket_path());
  m_client->send("secrets.watch", {{"lease_ids", ids}});
  while (true) {
    json msg = m_client->read_message(std::chrono::seconds{10});
    if (msg.is_null()) {
      throw util::Error(util::Errc::io, "the daemon did not answer secrets.watch", "secrets status");
    }
    if (msg.contains("id")) {
      if (msg.contains("error")) {
        const auto& err = msg["error"];
        throw rpc::RemoteError(err.value("code", rpc::code::internal), err.value("message", "watch failed"),
                               "secrets status");
      }
      break;
    }
    // A lease may end between the lease and the watch's reply.
    m_early.push_back(std::move(msg));
  }
}

int LeaseWatch::fd() const
{
  return m_client ? m_client->fd() : -1;
}

std::optional<LeaseEnded> LeaseWatch::ended(const json& message) const
{
  if (message.value("method", "") != "lease.ended" || !message.contains("params")) {
    return std::nullopt;
  }
  const std::string id = message["params"].value("lease_id", "");
  for (const auto& h : m_held) {
    if (h.lease_id == id) {
      return LeaseEnded{id, h.name, message["params"].value("reason", "ended")};
    }
  }
  return std::nullopt;
}

std::optional<LeaseEnded> LeaseWatch::read()
{
  // Everything is read, so nothing waits in the client's buffer unseen by poll.
  std::optional<LeaseEnded> first;
  for (const auto& msg : m_early) {
    first = first ? first : ended(msg);
  }
  m_early.clear();
  if (!m_client) {
    return first;
  }
  try {
    while (true) {
      json msg = m_client->read_message(std::chrono::milliseconds{0});
      if (msg.is_null()) {
        return first;
      }
      first = first ? first : ended(msg);
    }
  } catch (...) {
    m_client.reset();
    if (first) {
      return first;
    }
    return LeaseEnded{"", "", "lost the watch connection to the daemon, so a lease may have ended unseen"};
  }
}

Renewal::Renewal(const ExecOptions& o, std::vector<HeldLease>& held) : m_held(held)
{
  if (!o.renew || m_held.empty()) {
    return;
  }
  if (!o.max_lifetime.empty()) {
    m_lifetime_end = ExecClock::now() + std::chrono::duration_cast<ExecClock::duration>(
                                          util::parse_duration(o.max_lifetime).value_or(util::Duration::zero()));
  }
  util::Duration shortest = m_held.front().ttl;
  for (const auto& h : m_held) {
    shortest = std::min(shortest, h.ttl);
  }
  m_due = ExecClock::now() + std::chrono::duration_cast<ExecClock::duration>(shortest * 2 / 3);
}

void Renewal::renew()
{
  m_due.reset();
  const auto now = ExecClock::now();
  std::optional<util::Duration> next;
  for (auto& h : m_held) {
    auto ttl = h.ttl;
    for (const auto limit : {h.cap, m_lifetime_end}) {
      ttl = std::min(ttl, std::chrono::duration_cast<util::Duration>(limit - now));
    }
    if (ttl < std::chrono::seconds{1}) {
      continue;
    }
    try {
      call("secrets.renew", {{"lease_id", h.lease_id}, {"ttl", util::format_duration(ttl)}});
      next = next ? std::min(*next, ttl) : ttl;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "secrets: could not renew lease %s for %s: %s\n", h.lease_id.c_str(), h.name.c_str(),
                   e.what());
    }
  }
  if (next) {
    m_due = ExecClock::now() + std::chrono::duration_cast<ExecClock::duration>(*next * 2 / 3);
  }
}

} // namespace cmd
