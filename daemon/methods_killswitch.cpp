// secrets.rotate, secrets.revokeAll (the killswitch), secrets.resetKillswitch
#include "config/hooks.hpp"
#include "daemon/params.hpp"
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

struct RotateParams
{
  std::string secret_name;

  static RotateParams parse(const json& p) { return {required_string(p, "secret_name")}; }
};

void rotate(State& s, const Request& r, const RotateParams& p, Responder respond)
{
  s.rotate(p.secret_name, &r.peer, [respond = std::move(respond)](RotationOutcome o) {
    const uint64_t seq = o.audit_seq;
    respond([o = std::move(o)]() -> json {
      if (!o.success) {
        if (o.code == util::Errc::not_found || o.code == util::Errc::invalid_params) {
          throw util::Error(o.code, o.error, "secrets list");
        }
        // The hook's stderr ends the message; its last line break does not.
        const std::string output = o.output.substr(0, o.output.find_last_not_of(" \t\r\n") + 1);
        std::string fix = o.fix;
        if (fix.empty()) {
          fix = o.command.empty() ? "secrets set-hook " + o.name + " 'COMMAND'"
                                  : "run the hook by hand to see why: sh -c " + config::shell_quote(o.command);
        }
        throw util::Error(o.code, o.error + (output.empty() ? "" : ": " + output), fix);
      }
      json j = outcome_json(o);
      j["message"] = o.changed ? "secret rotated: " + o.name : "hook ran; value of " + o.name + " unchanged";
      return j;
    }, seq);
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
      if (state.store_open()) {
        state.store().forget_all();
      }
    }
    state.killswitch().finished(wipe);
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
  s.killswitch().started(rotate_all || wipe);
  auto revoked = s.leases().take_all(lease::EndReason::killswitch);
  run->leases_revoked = revoked.size();
  s.leases_revoked_all(std::move(revoked), peer); // effects now; the one killswitch line comes at the end
  std::vector<std::string> hooks;
  if (rotate_all && !s.killswitch().wiped() && s.store_open()) { // locked: nothing to rotate with
    for (const auto& info : s.store().list()) {
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

struct RevokeAllParams
{
  bool rotate = false;
  bool wipe = false;

  static RevokeAllParams parse(const json& p) { return {optional_bool(p, "rotate"), optional_bool(p, "wipe")}; }
};

// One at a time: the dispatcher refuses it while a killswitch runs (starts_killswitch).
void revoke_all(State& s, const Request& r, const RevokeAllParams& p, Responder respond)
{
  run_killswitch(s, &r.peer, p.rotate, p.wipe, "", [respond = std::move(respond)](json report, uint64_t seq) {
    respond([report = std::move(report)]() { return report; }, seq);
  });
}

json reset(State& s, const Request& r, const NoParams&)
{
  const bool was = s.killswitch().reset();
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
  // Rotating is what to do after a trip; after a wipe there is nothing to rotate.
  table.emplace("secrets.rotate", Method{.async_handler = with_params(rotate),
                                         .reads_values = true,
                                         .mutates_store = true,
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = false});
  // The killswitch is served in every state (DESIGN.md sections 8 and 11).
  table.emplace("secrets.revokeAll", Method{.async_handler = with_params(revoke_all),
                                            .allowed_while_tripped = true,
                                            .allowed_while_locked = true,
                                            .starts_killswitch = true});
  table.emplace("secrets.resetKillswitch", Method{.handler = with_params(reset),
                                                  .allowed_while_tripped = true,
                                                  .allowed_while_locked = false});
}

} // namespace server
