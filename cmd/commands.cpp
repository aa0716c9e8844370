#include "cmd/commands.hpp"

#include "cmd/command.hpp"
#include "cmd/mcp.hpp"
#include "cmd/passphrase.hpp"
#include "cmd/passphrase_input.hpp"
#include "cmd/usage.hpp"
#include "config/config.hpp"
#include "daemon/daemon.hpp"
#include "rpc/client.hpp"
#include "store/store.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/paths.hpp"
#include "util/process.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <string.h> // explicit_bzero
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <functional>
#include <limits>
#include <iostream>

namespace cmd {

std::string socket_path()
{
  return config::load(util::default_paths()).socket_path;
}

json call(const std::string& method, const json& params)
{
  rpc::Client client(socket_path());
  return client.call(method, params);
}

void add_binding(json& params, const std::string& bind)
{
  if (bind == "none") {
    return;
  }
  const auto fix = "secrets lease NAME --bind parent|self|none|PID";
  pid_t pid = 0;
  if (bind == "parent") {
    // The shell that runs the command line, not a fork of it that exits
    // with this command (`$(secrets lease x | tr -d '\n')` in a script).
    pid = util::unforked_ancestor(::getppid());
  } else if (bind == "self") {
    pid = ::getpid();
  } else {
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(bind.data(), bind.data() + bind.size(), n);
    if (ec != std::errc{} || end != bind.data() + bind.size() || n <= 0 || n > std::numeric_limits<pid_t>::max()) {
      throw util::Error(util::Errc::invalid_params, "invalid --bind \"" + bind + "\": expected parent, self, none or a pid",
                        fix);
    }
    pid = static_cast<pid_t>(n);
  }
  const auto start = util::process_start_time(pid);
  // Our parent can die and its pid be reused; while getppid() still names it,
  // and the forks above it still lead to the same ancestor, it has not.
  if (!start || (bind == "parent" && util::unforked_ancestor(::getppid()) != pid)) {
    throw util::Error(util::Errc::invalid_params, "process " + std::to_string(pid) + " to bind the lease to is not running",
                      fix);
  }
  params["bind_pid"] = pid;
  params["bind_start"] = *start;
}

namespace {


// Reads the whole of stdin (multi-line values survive, byte-exact), or
// prompts without echo on a terminal.
std::string read_value(const std::string& name)
{
  std::string value;
  if (::isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "value for %s (input hidden): ", name.c_str());
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, value);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    return value;
  }
  // A value must fit in one JSON-RPC line; a bigger one is refused here, before it travels.
  auto all = util::read_fd(STDIN_FILENO, rpc::k_max_line, "the value from stdin");
  if (!all) {
    throw util::Error(util::Errc::invalid_params,
                      "the value of " + name + " is larger than " + std::to_string(rpc::k_max_line / 1024) + " KiB, more than one request can carry",
                      "store a path or a reference to the file instead of its content");
  }
  return std::move(*all);
}

// A result's `warnings` (the daemon's proxy did not start, ...) go to
// stderr as well, where a user sees them even when stdout is captured.
void print_warnings(const json& result)
{
  if (const auto it = result.find("warnings"); it != result.end() && it->is_array()) {
    for (const auto& w : *it) {
      if (w.is_string()) {
        std::fprintf(stderr, "secrets: warning: %s\n", w.get_ref<const std::string&>().c_str());
      }
    }
  }
}

void write_raw(const std::string& value)
{
  util::write_all(STDOUT_FILENO, value, "the value to stdout");
  if (::isatty(STDOUT_FILENO)) {
    util::write_all(STDOUT_FILENO, "\n", "stdout");
  }
}

struct Options
{
  std::string name;
  std::string lease_id;
  std::string ttl;
  std::string client_id = "cli";
  std::string rotate_via;
  std::string bind;
  std::string value;
  bool proxy_only = false;
  std::string base_url;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_paths;
  std::string inject;
  bool force = false;
  bool json_out = false;
  bool raw = false;
  bool all = false;
  bool rotate = false;
  bool wipe = false;
  bool yes = false;
  bool reset = false;
  bool warnings_only = false;
  bool require_proxy = false;
  bool passphrase = false;
  int passphrase_fd = -1; // -1: not given
};

Outcome do_init(const Options& o)
{
  util::SystemClock clock;
  const auto paths = util::default_paths();
  std::string recipient;
  const bool with_passphrase = o.passphrase || o.passphrase_fd >= 0;
  if (with_passphrase) {
    const auto pass = read_passphrase(o.passphrase_fd >= 0 ? std::optional<int>(o.passphrase_fd) : std::nullopt,
                                      "new passphrase for identity.age", true);
    recipient = store::Store::init(paths, clock, pass.view());
  } else {
    recipient = store::Store::init(paths, clock);
  }
  return {success_envelope("secrets init",
                           {{"success", true},
                            {"message", with_passphrase ? "store initialized; identity.age is protected by a passphrase"
                                                        : "store initialized"},
                            {"directory", paths.home},
                            {"public_key", recipient},
                            {"protected", with_passphrase}},
                           {{with_passphrase ? "secrets serve" : "secrets serve &",
                             with_passphrase ? "start the daemon in a terminal: it asks for the passphrase once "
                                               "(or: secrets serve --passphrase-fd 3 3<FILE &)"
                                             : "start the daemon (make run starts it for you)"},
                            {"printf %s \"$VALUE\" | secrets add NAME", "add a secret (value on stdin)"}})};
}

Outcome do_add(const Options& o, bool value_flag_given)
{
  std::string value;
  if (value_flag_given) {
    std::fprintf(stderr, "secrets: warning: --value puts the secret in argv, visible to other processes; "
                         "pipe it on stdin instead\n");
    value = o.value;
  } else {
    value = read_value(o.name);
  }
  if (value.empty()) {
    return {error_envelope("secrets add", "empty value for " + o.name, "invalid_params",
                           "printf '%s' \"$VALUE\" | secrets add " + o.name),
            exit_code::usage};
  }
  try {
    std::string probe = json(value).dump();
    explicit_bzero(probe.data(), probe.size());
  } catch (const json::type_error&) {
    explicit_bzero(value.data(), value.size());
    return {error_envelope("secrets add", "the value of " + o.name + " is not valid UTF-8; JSON-RPC carries text only",
                           "invalid_params", "base64 < FILE | secrets add " + o.name + "  # and decode after leasing"),
            exit_code::usage};
  }
  json params = {{"name", o.name}, {"value", value}, {"force", o.force}};
  if (!o.rotate_via.empty()) {
    params["rotate_via"] = o.rotate_via;
  }
  if (o.proxy_only) {
    params["proxy_only"] = true;
    params["base_url"] = o.base_url;
    params["allow_methods"] = o.allow_methods;
    params["allow_paths"] = o.allow_paths;
    params["inject"] = o.inject;
  }
  json result;
  try {
    result = call("secrets.add", params);
  } catch (...) {
    explicit_bzero(value.data(), value.size());
    explicit_bzero(params["value"].get_ref<std::string&>().data(), value.size());
    throw;
  }
  explicit_bzero(value.data(), value.size());
  explicit_bzero(params["value"].get_ref<std::string&>().data(), value.size());
  std::vector<Action> next{{"secrets lease " + o.name, "take a lease (raw value)"},
                           {"secrets lease " + o.name + " --ttl 30m --json", "take a lease as JSON"},
                           {"secrets list", "list secrets"}};
  if (auto hint = hook_hint(o.name, o.rotate_via)) {
    // Recording a hook does not allow it (cmd/hook.cpp): say how, once.
    std::fprintf(stderr, "secrets: hint: the hook is recorded, not allowed; to let it run: %s\n",
                 hint->command.c_str());
    next.insert(next.begin(), std::move(*hint));
  }
  return {success_envelope("secrets add", result, next)};
}

Outcome do_lease(const Options& o)
{
  json params = {{"secret_name", o.name}, {"client_id", o.client_id}, {"ttl", o.ttl}};
  // Bound by default when captured ($(secrets lease x)): the lease ends with the shell that asked.
  add_binding(params, !o.bind.empty() ? o.bind : ::isatty(STDOUT_FILENO) ? "none" : "parent");
  json result = call("secrets.lease", params);
  print_warnings(result);
  auto& value = result["value"].get_ref<std::string&>();
  if (!o.json_out) {
    write_raw(value);
    explicit_bzero(value.data(), value.size());
    return {nullptr};
  }
  const std::string id = result.value("lease_id", "");
  Outcome out{success_envelope("secrets lease", result,
                               {{"secrets revoke " + id, "revoke this lease"},
                                {"secrets status", "check active leases"},
                                {"secrets revoke --all", "KILLSWITCH: revoke every lease"}})};
  explicit_bzero(value.data(), value.size());
  return out;
}

// On a terminal, the user types "wipe"; anywhere else, --yes is required.
bool confirm_wipe()
{
  if (!::isatty(STDIN_FILENO) || !::isatty(STDERR_FILENO)) {
    return false;
  }
  std::fprintf(stderr, "this destroys secrets.age and identity.age for good. type 'wipe' to confirm: ");
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "wipe";
}

Outcome do_revoke(const Options& o)
{
  if ((o.rotate || o.wipe) && !o.all) {
    return {error_envelope("secrets revoke", "--rotate and --wipe go with --all", "usage",
                           o.wipe ? "secrets revoke --all --wipe --yes  # destroys the store" : "secrets revoke --all --rotate"),
            exit_code::usage};
  }
  if (o.wipe && !o.yes && !confirm_wipe()) {
    return {error_envelope("secrets revoke", "--wipe destroys secrets.age and identity.age; not confirmed",
                           "usage", "secrets revoke --all --wipe --yes"),
            exit_code::usage};
  }
  if (o.all) {
    json result = call("secrets.revokeAll", {{"rotate", o.rotate}, {"wipe", o.wipe}});
    return {success_envelope("secrets revoke", result, {{"secrets status", "check the daemon"}})};
  }
  if (o.lease_id.empty()) {
    // Not the killswitch: the way to find the id.
    return {error_envelope("secrets revoke", "give a lease id, or --all for every lease", "usage",
                           "secrets leases  # lists live leases with their ids; then: secrets revoke LEASE_ID"),
            exit_code::usage};
  }
  json result = call("secrets.revoke", {{"lease_id", o.lease_id}});
  return {success_envelope("secrets revoke", result, {{"secrets status", "check active leases"}})};
}

Outcome do_renew(const Options& o)
{
  json result = call("secrets.renew", {{"lease_id", o.lease_id}, {"ttl", o.ttl}});
  return {success_envelope("secrets renew", result,
                           {{"secrets renew " + o.lease_id, "renew again before " + result.value("expires_at", "")},
                            {"secrets revoke " + o.lease_id, "end it now"}})};
}

} // namespace

int run(int argc, char** argv)
{
  CLI::App app{"agent-secrets: time-bounded leases on age-encrypted secrets", "secrets"};
  app.set_version_flag("--version", AGENT_SECRETS_VERSION);
  Options o;
  CommandAction action;
  std::string command = "secrets";

  auto* init = app.add_subcommand("init", "create the identity and the encrypted store");
  init->add_flag("--passphrase", o.passphrase,
                 "protect identity.age with a passphrase (asked on the terminal, or pinentry)");
  init->add_option("--passphrase-fd", o.passphrase_fd, "read the new passphrase from this descriptor (implies --passphrase)")
    ->check(CLI::NonNegativeNumber);
  init->callback([&] { action = [&] { return do_init(o); }; });

  auto* serve = app.add_subcommand("serve", "run the daemon in the foreground");
  serve->add_flag("--require-proxy", o.require_proxy,
                  "exit with an error if the proxy cannot start, rather than serve without it");
  serve->add_option("--passphrase-fd", o.passphrase_fd,
                    "read identity.age's passphrase from this descriptor (else the terminal, or pinentry)")
    ->check(CLI::NonNegativeNumber);
  serve->callback([&] {
    action = [&] {
      // Asked only when identity.age is protected, by the daemon's process
      // once it is non-dumpable (server::serve).
      auto passphrase = [&] {
        return read_passphrase(o.passphrase_fd >= 0 ? std::optional<int>(o.passphrase_fd) : std::nullopt,
                               "passphrase for identity.age", false);
      };
      server::serve(util::default_paths(), server::ServeOptions{o.require_proxy, passphrase});
      return Outcome{nullptr};
    };
  });

  auto* add = app.add_subcommand("add", "store a secret; the value is read from stdin");
  add->add_option("name", o.name, "secret name")->required();
  add->add_option("--rotate-via", o.rotate_via, "shell command that rotates the secret");
  add->add_flag("--force", o.force, "replace an existing secret");
  auto* value_opt = add->add_option("--value", o.value, "the value (visible in argv: prefer stdin)");
  auto* proxy_only = add->add_flag("--proxy-only", o.proxy_only,
                                   "never hand out the value: leases get a placeholder for the proxy");
  auto* base_url = add->add_option("--base-url", o.base_url, "proxy-only: where the proxy sends requests (https://...)")
                     ->needs(proxy_only);
  proxy_only->needs(base_url);
  add->add_option("--allow-method", o.allow_methods, "proxy-only: allowed methods, e.g. GET,POST (default: any)")
    ->delimiter(',')
    ->needs(proxy_only);
  add->add_option("--allow-path", o.allow_paths, "proxy-only: allowed path prefixes (default: base URL's path)")
    ->delimiter(',')
    ->needs(proxy_only);
  add->add_option("--inject", o.inject, "proxy-only: bearer (default), basic, header:NAME, query:NAME or body")
    ->needs(proxy_only);
  add->callback([&] { action = [&] { return do_add(o, value_opt->count() > 0); }; });

  auto* list = app.add_subcommand("list", "list secrets (never values)");
  list->callback([&] {
    action = [] {
      json result = call("secrets.list");
      std::vector<Action> next;
      for (auto& s : result["secrets"]) {
        // The daemon keeps Go's zero time on the wire for Go clients; a
        // person reads it as a date. Never rotated is null here, and
        // has_rotation is the Go CLI's field.
        if (s.value("last_rotated", "") == "0001-01-01T00:00:00Z") {
          s["last_rotated"] = nullptr;
        }
        s["has_rotation"] = !s.value("rotate_via", "").empty();
        next.push_back({"secrets lease " + s["name"].get<std::string>(), "lease " + s["name"].get<std::string>()});
      }
      result["count"] = result["secrets"].size();
      if (next.empty()) {
        next.push_back({"secrets add <name>", "add a secret (value on stdin)"});
      }
      return Outcome{success_envelope("secrets list", result, next)};
    };
  });

  auto* lease = app.add_subcommand("lease", "take a time-bounded lease; prints the raw value");
  lease->add_option("name", o.name, "secret name")->required();
  lease->add_option("--ttl", o.ttl, "lease duration, e.g. 30m or 1h (default from config)");
  lease->add_option("--client-id", o.client_id, "who holds the lease (audited)");
  lease->add_flag("--json", o.json_out, "print the JSON envelope instead of the raw value");
  lease->add_flag("--raw", o.raw, "print the raw value (the default; kept for old scripts)");
  lease->add_option("--bind", o.bind,
                    "end the lease when this process exits: parent, self, none or a pid "
                    "(default: parent when stdout is not a terminal, else none)");
  lease->callback([&] { action = [&] { return do_lease(o); }; });

  auto* revoke = app.add_subcommand("revoke", "end a lease, or every lease with --all");
  revoke->add_option("lease_id", o.lease_id, "lease id");
  revoke->add_flag("--all", o.all, "KILLSWITCH: revoke every lease");
  revoke->add_flag("--rotate", o.rotate, "with --all: run every rotation hook");
  revoke->add_flag("--wipe", o.wipe, "with --all: destroy the store (needs --yes)");
  revoke->add_flag("--yes", o.yes, "confirm --wipe");
  revoke->callback([&] { action = [&] { return do_revoke(o); }; });

  auto* renew = app.add_subcommand("renew", "extend a live lease, up to max_lease_ttl from its creation");
  renew->add_option("lease_id", o.lease_id, "lease id")->required();
  renew->add_option("--ttl", o.ttl, "new lifetime from now, e.g. 30m (default: the lease's own TTL)");
  renew->callback([&] { action = [&] { return do_renew(o); }; });

  auto* remove = app.add_subcommand("remove", "delete a secret and revoke its leases");
  remove->alias("delete");
  remove->add_option("name", o.name, "secret name")->required();
  remove->callback([&] {
    action = [&] {
      json result = call("secrets.delete", {{"name", o.name}});
      return Outcome{success_envelope("secrets remove", result, {{"secrets list", "list secrets"}})};
    };
  });

  add_audit_command(app, action);

  auto* rotate = app.add_subcommand("rotate", "run a secret's rotation hook; its trimmed stdout becomes the value");
  rotate->add_option("name", o.name, "secret name")->required();
  rotate->callback([&] {
    action = [&] {
      json result = call("secrets.rotate", {{"secret_name", o.name}});
      return Outcome{success_envelope("secrets rotate", result,
                                      {{"secrets lease " + o.name, "lease the new value"},
                                       {"secrets audit --tail 5", "see the rotation in the audit log"}})};
    };
  });

  auto* config_cmd = app.add_subcommand("config", "print the effective configuration (config.json and defaults)");
  config_cmd->callback([&] {
    action = [] {
      const auto paths = util::default_paths();
      json result = json(config::to_json(config::load(paths)));
      // The file only when there is one; else these are the defaults.
      std::error_code ec;
      result["source"] = std::filesystem::exists(paths.config, ec) ? json(paths.config) : json("defaults");
      return Outcome{success_envelope("secrets config", result, {{"secrets status", "check the daemon"}})};
    };
  });

  auto* status = app.add_subcommand("status", "show the daemon's state");
  status->add_flag("--reset", o.reset, "clear a tripped heartbeat killswitch");
  status->callback([&] {
    action = [&] {
      if (o.reset) {
        call("secrets.resetKillswitch");
      }
      json result = call("secrets.status");
      print_warnings(result);
      return Outcome{success_envelope("secrets status", result,
                                      {{"secrets list", "list secrets"}, {"secrets health", "check secret hygiene"}})};
    };
  });

  auto* health = app.add_subcommand("health", "show stale secrets, missing hooks and leases about to expire");
  health->add_flag("--warnings", o.warnings_only, "only the warnings");
  health->callback([&] {
    action = [&] {
      json result = call("secrets.health");
      const size_t n = result["warnings"].size();
      result["warnings_count"] = n;
      result["status"] = n == 0 ? std::string("healthy") : std::to_string(n) + " warning(s) detected";
      if (o.warnings_only) {
        result = n == 0 ? json{{"status", "healthy"}} : json{{"status", result["status"]}, {"warnings", result["warnings"]}};
      }
      return Outcome{success_envelope("secrets health", result,
                                      {{"secrets set-hook NAME 'COMMAND'", "add a rotation hook to a secret"},
                                       {"secrets audit --tail 20", "see recent activity"}})};
    };
  });

  add_version_commands(app, action);
  add_exec_command(app, action);
  add_env_commands(app, action);
  add_import_command(app, action);
  add_mcp_command(app, action);
  add_openclaw_resolve_command(app, action);
  add_hook_commands(app, action);
  add_leases_command(app, action);
  add_passphrase_commands(app, action);
  add_completion_command(app, action);
  add_man_command(app, action);

  const std::vector<std::string> typed(argv + std::min(argc, 1), argv + argc);
  // `secrets help [COMMAND]`, as the Go CLI (cobra) has it.
  if (!typed.empty() && typed[0] == "help") {
    if (typed.size() == 1) {
      std::fputs(short_help(app).c_str(), stdout);
      return exit_code::ok;
    }
    const CLI::App* sub = nullptr;
    try {
      sub = app.get_subcommand(typed[1]);
    } catch (const CLI::OptionNotFound&) {
    }
    if (sub == nullptr || typed.size() > 2) {
      print(error_envelope("secrets help", "no command \"" + typed[1] + "\" to show help for", "usage", "secrets help"),
            stderr);
      return exit_code::usage;
    }
    std::fputs(sub->help().c_str(), stdout);
    return exit_code::ok;
  }
  if (typed.size() == 1 && typed[0] == "--json") {
    print(command_tree(app));
    return exit_code::ok;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print(usage_error(app, e, typed), stderr);
    return exit_code::usage;
  }
  if (auto chained = chained_commands_error(app, typed); !chained.is_null()) {
    print(chained, stderr);
    return exit_code::usage;
  }
  for (const auto* sub : app.get_subcommands()) {
    command += " " + sub->get_name();
  }
  if (!action) {
    // A person at a terminal gets the short help; an agent reading a pipe
    // gets the command tree as the Go CLI prints it (also `secrets --json`).
    if (::isatty(STDOUT_FILENO)) {
      std::fputs(short_help(app).c_str(), stdout);
    } else {
      print(command_tree(app));
    }
    return exit_code::ok;
  }
  try {
    Outcome out = action();
    if (!out.envelope.is_null()) {
      // Errors go to stderr, so that $(secrets ...) never captures one.
      print(out.envelope, out.exit == exit_code::ok ? stdout : stderr);
    }
    return out.exit;
  } catch (...) {
    const Failure f = failure_from_current_exception();
    print(error_envelope(command, f.message, f.code, f.fix), stderr);
    return f.exit;
  }
}

} // namespace cmd
