// secrets.rotate, secrets.revokeAll (the killswitch), secrets.resetKillswitch
#include "daemon/session.hpp"
#include "daemon/state.hpp"
#include "killswitch/wipe.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

#include <spdlog/spdlog.h>

namespace server {

namespace {

json outcome_json(const RotationOutcome& o)
{
  json j = {{"secret_name", o.name},
            {"success", o.success},
            {"changed", o.changed},
            {"output", o.output},
            {"executed_at", util::format_rfc3339_nano(o.executed_at)}};
  if (!o.command.empty()) {
    j["rotate_via"] = o.command;
  }
  if (!o.error.empty()) {
    j["error"] = o.error;
  }
  if (!o.fix.empty()) {
    j["fix"] = o.fix;
  }
  return j;
}

void rotate(State& s, const Request& r, Responder respond)
{
  const std::string name = required_string(r.params, "secret_name");
  s.rotate(name, &r.peer, [&s, respond = std::move(respond)](RotationOutcome o) {
    respond([&s, o = std::move(o)]() -> json {
      s.request_seq = std::max(s.request_seq, o.audit_seq);
      if (!o.success) {
        if (o.code == util::Errc::secret_not_found) {
          throw util::Error(o.code, o.error, "secrets list");
        }
        throw util::Error(o.code, o.error + (o.output.empty() ? "" : ": " + o.output),
                          !o.fix.empty() ? o.fix : "secrets add " + o.name + " --rotate-via '<command>' --force");
      }
      json j = outcome_json(o);
      j["message"] = o.changed ? "secret rotated: " + o.name : "hook ran; value of " + o.name + " unchanged";
      return j;
    });
  });
}

// Shared by revokeAll and the heartbeat's fail_action. Ends every lease at
// once, then rotates and wipes as asked, then writes one killswitch line and
// calls `done` with the report.
struct KillswitchRun
{
  State& state;
  std::optional<Peer> peer;
  bool wipe = false;
  std::string cause;
  size_t leases_revoked = 0;
  std::vector<RotationOutcome> rotations;
  size_t pending = 0;
  std::function<void(json report, uint64_t seq)> done;

  void finish()
  {
    bool wiped = false;
    std::string wipe_error;
    if (wipe) {
      try {
        killswitch::wipe_file(state.paths.secrets);
        killswitch::wipe_file(state.paths.identity);
        wiped = true;
      } catch (const std::exception& e) {
        wipe_error = e.what();
      }
      state.store->forget_all();
      state.wiped = true;
    }
    state.killswitch_running = false;
    size_t rotated_ok = 0;
    json rotated = json::array();
    for (const auto& o : rotations) {
      rotated_ok += o.success ? 1 : 0;
      rotated.push_back(outcome_json(o));
    }
    std::string details = cause + "revoked " + std::to_string(leases_revoked) + " leases";
    if (!rotations.empty()) {
      details += ", rotated " + std::to_string(rotated_ok) + " of " + std::to_string(rotations.size()) + " secrets";
    }
    if (wipe) {
      details += wiped ? ", wiped the store" : ", wipe failed: " + wipe_error;
    }
    const uint64_t seq = state.audit({{"action", "killswitch"},
                                      {"details", details},
                                      {"success", wipe_error.empty()},
                                      {"leases_revoked", leases_revoked},
                                      {"rotated", rotated_ok},
                                      {"rotation_failed", rotations.size() - rotated_ok},
                                      {"wiped", wiped}},
                                     peer ? &*peer : nullptr);
    spdlog::warn("killswitch: {}", details);
    json report = {{"success", wipe_error.empty()},
                   {"leases_revoked", leases_revoked},
                   {"message", "killswitch: " + details},
                   {"rotated", std::move(rotated)},
                   {"wiped", wiped}};
    done(std::move(report), seq);
  }
};

} // namespace

void run_killswitch(State& s, const Peer* peer, bool rotate_all, bool wipe, std::string cause,
                    std::function<void(json report, uint64_t seq)> done)
{
  auto run = std::make_shared<KillswitchRun>(KillswitchRun{s, peer ? std::optional<Peer>(*peer) : std::nullopt, wipe,
                                                           std::move(cause), 0, {}, 0, std::move(done)});
  s.killswitch_running = rotate_all || wipe;
  auto revoked = s.leases.take_all(lease::EndReason::killswitch);
  run->leases_revoked = revoked.size();
  s.leases_revoked_all(std::move(revoked), peer); // effects now; the one killswitch line comes at the end
  std::vector<std::string> hooks;
  if (rotate_all && !s.wiped) {
    for (const auto& info : s.store->list()) {
      if (!info.rotate_via.empty()) {
        hooks.push_back(info.name);
      }
    }
  }
  if (hooks.empty()) {
    run->finish();
    return;
  }
  run->pending = hooks.size();
  for (const auto& name : hooks) {
    s.rotate(name, peer, [run](RotationOutcome o) {
      run->rotations.push_back(std::move(o));
      if (--run->pending == 0) {
        run->finish();
      }
    });
  }
}

namespace {

void revoke_all(State& s, const Request& r, Responder respond)
{
  const bool rotate_all = optional_bool(r.params, "rotate");
  const bool wipe = optional_bool(r.params, "wipe");
  if (s.killswitch_running) {
    s.audit({{"action", "denied"}, {"details", "secrets.revokeAll: a killswitch is already running"}, {"success", false}},
            &r.peer);
    respond([] () -> json {
      throw util::Error(util::Errc::killswitch_tripped, "a killswitch is already running", "secrets status");
    });
    return;
  }
  run_killswitch(s, &r.peer, rotate_all, wipe, "", [&s, respond = std::move(respond)](json report, uint64_t seq) {
    respond([&s, report = std::move(report), seq]() {
      s.request_seq = std::max(s.request_seq, seq);
      return report;
    });
  });
}

json reset(State& s, const Request& r)
{
  const bool was = !s.tripped_reason.empty();
  s.tripped_reason.clear();
  s.heartbeat_reset();
  // Not a "killswitch" line: replay treats those as revoke-all.
  s.audit({{"action", "killswitch_reset"},
           {"details", was ? "new leases allowed again" : "was not tripped"}},
          &r.peer);
  return {{"success", true}, {"was_tripped", was}};
}

} // namespace

void add_killswitch_methods(MethodTable& table)
{
  // Both audit their own outcome (State::rotate, the killswitch line), once.
  table.emplace("secrets.rotate", Method{nullptr, nullptr, rotate});
  table.emplace("secrets.revokeAll", Method{nullptr, nullptr, revoke_all});
  table.emplace("secrets.resetKillswitch", Method{reset, nullptr});
}

} // namespace server
