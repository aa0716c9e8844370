// State::rotate: a secret's rotation hook, checked against hooks.json (read
// at every rotation), run on a worker, its outcome stored and audited on the
// io thread. Not a gate: the allowlist is what a rotation is (DESIGN.md
// section 16); secrets.rotate's gates are the dispatcher's.
#include "daemon/state.hpp"

#include "config/hooks.hpp"
#include "rotation/runner.hpp"
#include "util/error.hpp"

#include <spdlog/spdlog.h>

#include <string.h> // explicit_bzero

namespace server {

void State::audit_hooks_change(const config::Hooks& hooks, const Peer* peer)
{
  if (m_hooks_seen && *m_hooks_seen == hooks) {
    return;
  }
  // The CLI writes hooks.json itself and cannot append to our log: what it
  // changed is audited here, at the first rotation that reads the change.
  json allowed = json::object();
  json removed = json::array();
  for (const auto& [name, command] : hooks.commands) {
    const std::string* before = m_hooks_seen ? m_hooks_seen->find(name) : nullptr;
    if (!before || *before != command) {
      allowed[name] = command;
    }
  }
  if (m_hooks_seen) {
    for (const auto& [name, command] : m_hooks_seen->commands) {
      if (!hooks.find(name)) {
        removed.push_back(name);
      }
    }
  }
  const std::string details =
    m_hooks_seen ? "hooks.json changed: " + std::to_string(allowed.size()) + " allowed or changed, "
                     + std::to_string(removed.size()) + " removed"
                 : "hooks.json as first read since the daemon started: " + std::to_string(hooks.commands.size())
                     + " hooks";
  audit({{"action", "hook_allowlist"}, {"details", details}, {"allowed", allowed}, {"removed", removed}}, peer);
  m_hooks_seen = hooks;
}

void State::rotate(const std::string& name, const Peer* peer, std::function<void(RotationOutcome)> done)
{
  RotationOutcome failed;
  failed.name = name;
  failed.executed_at = clock.now();
  const auto* secret = m_store->find(name);
  const std::string command = secret ? secret->info.rotate_via : std::string();
  if (m_killswitch.wiped() || !secret) {
    const auto error = store::unknown_secret(name);
    failed.error = error.what();
    failed.code = error.code();
  } else if (command.empty()) {
    failed.error = "secret " + name + " has no rotation hook";
  } else if (m_rotating.count(name) != 0) {
    failed.error = "a rotation of " + name + " is already running";
  } else {
    // Read at every rotation: what runs is what the file says now. Anyone
    // on the socket can record a rotate_via; only the user's hooks.json
    // lets it run (DESIGN.md section 16).
    try {
      const auto hooks = config::load_hooks(paths);
      audit_hooks_change(hooks, peer);
      const std::string* allowed = hooks.find(name);
      if (!allowed || *allowed != command) {
        failed.code = util::Errc::unauthorized;
        failed.error = "the rotation hook of " + name
                       + (allowed ? " differs from its entry in " : " is not in ") + config::hooks_path(paths)
                       + "; nothing ran";
        failed.fix = "check the command, then: secrets hook allow " + name + " " + config::shell_quote(command);
      }
    } catch (const util::Error& e) {
      failed.code = e.code();
      failed.error = std::string(e.what()) + "; the rotation hook of " + name + " did not run";
      failed.fix = e.fix();
    }
  }
  failed.command = command;
  if (!failed.error.empty()) {
    json line = {{"action", "secret_rotate"}, {"secret_name", name}, {"details", failed.error}, {"success", false}};
    if (!command.empty()) {
      line["rotate_via"] = command;
      line["ran"] = false;
    }
    failed.audit_seq = audit(std::move(line), peer);
    if (failed.code == util::Errc::unauthorized) {
      spdlog::warn("rotation of {} refused: {}", name, failed.error);
    }
    asio::post(io, [done = std::move(done), failed = std::move(failed)]() mutable { done(std::move(failed)); });
    return;
  }
  m_rotating.insert(name);
  const std::optional<Peer> who = peer ? std::optional<Peer>(*peer) : std::nullopt;
  auto value = std::make_shared<store::age::SecretBuffer>(secret->value.view());
  asio::post(m_workers, [this, name, who, value, command, done = std::move(done)]() mutable {
    auto result = std::make_shared<rotation::HookResult>(
      rotation::run_hook(command, name, value->view(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(settings.rotation_timeout)));
    value.reset();
    asio::post(io, [this, name, who, result, command, done = std::move(done)] {
      m_rotating.erase(name);
      RotationOutcome out;
      out.name = name;
      out.command = command;
      out.executed_at = clock.now();
      out.output = result->stderr_tail; // redacted by the runner
      std::string fresh = rotation::trim(result->stdout_data);
      explicit_bzero(result->stdout_data.data(), result->stdout_data.size());
      const Peer* p = who ? &*who : nullptr;
      if (result->survivors != 0) {
        spdlog::warn("rotation hook of {}: {} descendants could not be killed", name, result->survivors);
      }
      try {
        if (result->status != rotation::HookResult::Status::ok) {
          out.error = "rotation hook for " + name + " " + result->error;
        } else if (m_killswitch.wiped() || !m_store->find(name)) {
          out.error = "secret " + name + " was removed while its hook ran";
        } else {
          out.changed = !fresh.empty();
          m_store->mark_rotated(name, out.changed ? std::optional(store::age::SecretBuffer(fresh)) : std::nullopt);
          out.success = true;
        }
      } catch (const std::exception& e) {
        out.error = std::string("failed to store the rotated value: ") + e.what();
      }
      explicit_bzero(fresh.data(), fresh.size());
      json line = {{"action", "secret_rotate"}, {"secret_name", name}, {"success", out.success}};
      if (out.success) {
        line["details"] = out.changed ? "value changed" : "hook printed nothing; value unchanged";
      } else {
        line["details"] = out.error + (out.output.empty() ? "" : "; stderr: " + out.output);
      }
      line["rotate_via"] = command;
      line["ran"] = true;
      line["containment"] = result->containment;
      out.audit_seq = audit(std::move(line), p);
      done(std::move(out));
    });
  });
}

} // namespace server
