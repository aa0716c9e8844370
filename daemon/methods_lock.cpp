// secrets.unlock, secrets.lock (DESIGN.md section 11)
#include "daemon/params.hpp"
#include "daemon/state.hpp"
#include "store/identity.hpp"
#include "util/duration.hpp"
#include "util/error.hpp"
#include "util/time.hpp"

#include <memory>

namespace server {

namespace {

using store::age::SecretBuffer;

std::optional<util::Duration> optional_duration(const json& p, const char* field)
{
  const std::string text = optional_string(p, field);
  if (text.empty()) {
    return std::nullopt;
  }
  const auto d = util::parse_duration(text);
  if (!d || *d <= util::Duration::zero()) {
    throw util::Error(util::Errc::invalid_params,
                      std::string("invalid params: field ") + field + " must be a positive duration such as 30m",
                      std::string("secrets unlock --") + field + " 30m");
  }
  return d;
}

struct UnlockParams
{
  // Shared: the worker that runs scrypt holds it, and frees (wipes) it there.
  std::shared_ptr<SecretBuffer> passphrase;
  util::Duration idle = LockState::k_default_idle;
  util::Duration max = LockState::k_default_max;

  static UnlockParams parse(const json& p)
  {
    const auto it = p.find("passphrase");
    if (it == p.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      throw util::Error(util::Errc::invalid_params, "invalid params: field passphrase must be a non-empty string",
                        "secrets unlock");
    }
    UnlockParams out;
    out.passphrase = std::make_shared<SecretBuffer>(it->get_ref<const std::string&>());
    out.idle = std::min(optional_duration(p, "idle").value_or(LockState::k_default_idle), LockState::k_default_idle);
    out.max = std::min(optional_duration(p, "max").value_or(LockState::k_default_max), LockState::k_default_max);
    return out;
  }
};

json lock_result(const State& s, const char* message)
{
  json j = s.lock_state().status();
  j["success"] = true;
  j["message"] = message;
  return j;
}

void unlock(State& s, const Request& r, const UnlockParams& p, Responder respond)
{
  if (!s.lock_state().locked()) {
    respond([&s] { return lock_result(s, "the store is already unlocked"); });
    return;
  }
  const auto wait = s.lock_state().wait_before_attempt(s.clock.now());
  if (wait > util::Duration::zero()) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(wait);
    // Says nothing about the passphrase: only when the next try is heard.
    throw util::Error(util::Errc::unauthorized,
                      "unlock refused: after " + std::to_string(s.lock_state().failures())
                        + " wrong passphrases the next attempt is accepted in " + util::format_duration(seconds),
                      "wait " + util::format_duration(seconds) + ", then: secrets unlock");
  }
  if (s.lock_state().attempting()) {
    throw util::Error(util::Errc::invalid_params, "an unlock is already being checked", "secrets status");
  }
  s.lock_state().attempt_started();
  const Peer peer = r.peer;
  const auto idle = p.idle;
  const auto max = p.max;
  s.open_store(p.passphrase, [&s, peer, idle, max, respond](std::unique_ptr<store::Store> opened,
                                                             std::optional<util::Error> error) {
    s.lock_state().attempt_finished();
    if (error) {
      if (error->code() == util::Errc::unauthorized) {
        s.lock_state().attempt_failed(s.clock.now());
      }
      respond([error = *error]() -> json { throw error; }); // audited as unlock_failed
      return;
    }
    if (!s.lock_state().locked()) {
      respond([&s] { return lock_result(s, "the store is already unlocked"); });
      return; // `opened` is freed and wiped here
    }
    s.unlocked(std::move(opened), idle, max);
    const uint64_t seq = s.audit({{"action", "unlock"},
                                  {"details", "unlocked; locks after " + util::format_duration(idle)
                                                + " without a value handed out, or " + util::format_duration(max)
                                                + " from now"},
                                  {"idle", util::format_duration(idle)},
                                  {"max", util::format_duration(max)}},
                                 &peer);
    respond([&s] { return lock_result(s, "the store is unlocked"); }, seq);
  });
}

json lock(State& s, const Request& r, const NoParams&)
{
  if (s.lock_state().locked()) {
    return lock_result(s, "the store was already locked");
  }
  if (!store::identity_is_protected(s.paths)) {
    // Locking a store anyone can open with identity.age protects nothing.
    throw util::Error(util::Errc::invalid_params, "identity.age is not passphrase-protected: locking protects nothing",
                      "secrets passphrase set, then restart the daemon");
  }
  s.lock("manual", &r.peer);
  return lock_result(s, "the store is locked; leases already granted keep their deadlines");
}

} // namespace

void add_lock_methods(MethodTable& table)
{
  table.emplace("secrets.unlock", Method{.async_handler = with_params(unlock),
                                         .audit_action = "unlock_failed",
                                         .allowed_while_tripped = true,
                                         .allowed_while_locked = true});
  table.emplace("secrets.lock", Method{.handler = with_params(lock),
                                       .allowed_while_tripped = true,
                                       .allowed_while_locked = true});
}

} // namespace server
