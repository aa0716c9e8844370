// `secrets hook allow NAME 'COMMAND' | remove NAME | list`: the user's
// allowlist of rotation hooks, hooks.json (DESIGN.md section 16).
//
// This process writes the file itself; there is no RPC method for it, so no
// socket client (an agent, a tool, a process in another namespace) can allow
// a command. The daemon reads the file at every rotation and audits what it
// finds changed (the CLI cannot append to audit.log, which the daemon holds).
// `secrets add --rotate-via` only records a hook; it does not allow it, and
// says how to (hook_hint): allowing stays one explicit, separate step.
// `secrets set-hook NAME 'COMMAND'` records a hook on an existing secret
// without its value (secrets.setHook), with the same hint.

#include "cmd/command.hpp"
#include "config/hooks.hpp"
#include "store/store.hpp"
#include "util/error.hpp"
#include "util/paths.hpp"

namespace cmd {

namespace {

struct HookOptions
{
  std::string name;
  std::string command;
};

void check_name(const std::string& name)
{
  if (!store::is_valid_name(name)) {
    throw util::Error(util::Errc::invalid_params,
                      "invalid secret name " + json(name).dump(-1, ' ', false, json::error_handler_t::replace)
                        + ": use letters, digits, '_', '-' and '.', at most 128",
                      "secrets hook allow my_api_key 'COMMAND'");
  }
}

// The hook the daemon has recorded for `name`, when the daemon answers and
// the secret exists; the allowlist is useful without either.
std::optional<std::string> recorded_hook(const std::string& name)
{
  try {
    const json listed = call("secrets.list");
    for (const auto& s : listed.at("secrets")) {
      if (s.value("name", "") == name) {
        return s.value("rotate_via", "");
      }
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

Outcome allow(const HookOptions& o)
{
  check_name(o.name);
  const auto paths = util::default_paths();
  const auto replaced = config::allow_hook(paths, o.name, o.command);
  json result = {{"success", true},
                 {"message", "hook allowed: " + o.name},
                 {"name", o.name},
                 {"command", o.command},
                 {"replaced", replaced ? json(*replaced) : json(nullptr)},
                 {"file", config::hooks_path(paths)}};
  std::vector<Action> next{{"secrets rotate " + o.name, "run it now"},
                           {"secrets hook list", "show every allowed hook"}};
  if (const auto recorded = recorded_hook(o.name)) {
    result["matches_secret"] = *recorded == o.command;
    if (*recorded != o.command) {
      result["warning"] = "secret " + o.name + " records a different rotate_via; rotate refuses it until both agree";
      next.insert(next.begin(), {"secrets set-hook " + o.name + " " + config::shell_quote(o.command),
                                 "record this command on the secret (its value stays)"});
    }
  }
  return {success_envelope("secrets hook allow", result, next)};
}

// Records the hook on the secret over the socket (the value stays); the
// allowlist is a separate step, as for add --rotate-via.
Outcome set_hook(const HookOptions& o)
{
  check_name(o.name);
  json result = call("secrets.setHook", {{"name", o.name}, {"rotate_via", o.command}});
  std::vector<Action> next{{"secrets list", "see the secret's rotate_via"}};
  if (auto hint = hook_hint(o.name, o.command)) {
    std::fprintf(stderr, "secrets: hint: the hook is recorded, not allowed; to let it run: %s\n", hint->command.c_str());
    next.insert(next.begin(), std::move(*hint));
  } else if (!o.command.empty()) {
    next.insert(next.begin(), {"secrets rotate " + o.name, "run it now"});
  }
  return {success_envelope("secrets set-hook", result, next)};
}

Outcome remove(const HookOptions& o)
{
  const auto paths = util::default_paths();
  const auto removed = config::remove_hook(paths, o.name);
  if (!removed) {
    throw util::Error(util::Errc::not_found, "no hook is allowed for " + o.name, "secrets hook list");
  }
  return {success_envelope("secrets hook remove",
                           {{"success", true},
                            {"message", "hook removed: " + o.name + "; rotate refuses it from now on"},
                            {"name", o.name},
                            {"command", *removed},
                            {"file", config::hooks_path(paths)}},
                           {{"secrets hook list", "show the allowed hooks"}})};
}

Outcome list()
{
  const auto paths = util::default_paths();
  json hooks = json::array();
  for (const auto& [name, command] : config::load_hooks(paths).commands) {
    hooks.push_back({{"name", name}, {"command", command}});
  }
  const bool empty = hooks.empty();
  return {success_envelope("secrets hook list", {{"file", config::hooks_path(paths)}, {"hooks", std::move(hooks)}},
                           {{empty ? "secrets hook allow NAME 'COMMAND'" : "secrets list",
                             empty ? "allow a secret's rotation hook" : "compare with the secrets' rotate_via"}})};
}

} // namespace

std::optional<Action> hook_hint(const std::string& name, const std::string& rotate_via)
{
  if (rotate_via.empty()) {
    return std::nullopt;
  }
  try {
    const auto hooks = config::load_hooks(util::default_paths());
    if (const auto* allowed = hooks.find(name); allowed && *allowed == rotate_via) {
      return std::nullopt;
    }
  } catch (const std::exception&) {
    // An unreadable hooks.json allows nothing: the hint stands.
  }
  return Action{"secrets hook allow " + name + " " + config::shell_quote(rotate_via),
                "allow this hook to run: until then `secrets rotate " + name + "` refuses it"};
}

void add_hook_commands(CLI::App& app, CommandAction& action)
{
  static HookOptions o;
  auto* hook = app.add_subcommand("hook", "allow or remove rotation hooks (hooks.json; never over the socket)");
  hook->require_subcommand(1);

  auto* allow_cmd = hook->add_subcommand("allow", "allow NAME's rotation hook to run this exact command");
  allow_cmd->add_option("name", o.name, "secret name")->required();
  allow_cmd->add_option("command", o.command, "the shell command, exactly as recorded by add --rotate-via")
    ->required();
  allow_cmd->callback([&action] { action = [] { return allow(o); }; });

  auto* remove_cmd = hook->add_subcommand("remove", "stop NAME's rotation hook from running");
  remove_cmd->add_option("name", o.name, "secret name")->required();
  remove_cmd->callback([&action] { action = [] { return remove(o); }; });

  auto* list_cmd = hook->add_subcommand("list", "show the allowed rotation hooks");
  list_cmd->callback([&action] { action = [] { return list(); }; });

  auto* set_cmd = app.add_subcommand("set-hook", "record NAME's rotation hook, keeping its value ('' clears it)");
  set_cmd->add_option("name", o.name, "secret name")->required();
  set_cmd->add_option("command", o.command, "the shell command that prints the new value")->required();
  set_cmd->callback([&action] { action = [] { return set_hook(o); }; });
}

} // namespace cmd
