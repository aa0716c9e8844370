// secrets exec [--ttl D] [--client-id ID] [--no-masking] [--file F]
//              [--renew [--max-lifetime D]] [--on-leak warn|revoke|rotate]
//              [--kill-grace D] [--secret NAME[=VAR]]... -- CMD ARGS...
//
// Leases every listed secret, runs CMD in its own process group with the
// values in its environment (never in argv, never on disk), and:
// - masks the values in its stdout and stderr (cmd/mask.hpp) unless
//   --no-masking, in which case the child inherits our stdout and stderr;
// - forwards SIGINT, SIGTERM and SIGHUP to the child's process group;
// - holds a secrets.watch connection: when a lease ends (or the connection
//   drops) it sends SIGTERM to the group, SIGKILL --kill-grace later (5 s
//   by default), and says why on stderr;
// - where its own stdin, stdout or stderr is closed, puts /dev/null there
//   first, so neither its pipes nor its daemon connection take those numbers
//   (the child finds /dev/null there too);
// - binds its leases to itself (they end if exec dies, even by SIGKILL);
// - with --renew, renews them at two thirds of their TTL, up to --max-lifetime;
// - reports a leased value seen in the output (concealed) as a leak, once per
//   lease; the daemon audits it and, per --on-leak, revokes or rotates;
// - revokes its leases when the child ends (best effort).
//
// Exit codes: the child's status, or 128+signal when it was killed by a
// signal. When exec stopped the child itself because a lease ended: 5 (denied)
// if the lease was revoked, killswitched or its secret deleted; 1 if it
// expired or the watch connection to the daemon was lost. Before spawning: 4
// when a listed secret is missing (nothing runs), 3 daemon down, 2 usage,
// 127 when CMD is not found, 126 when it cannot be executed. exec prints no
// envelope on success; errors before spawning print the error envelope on
// stderr (stdout belongs to the child).
#include "cmd/exec.hpp"

#include "util/duration.hpp"
#include "util/error.hpp"
#include "util/spawn.hpp"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace cmd {

namespace {

constexpr const char* k_command = "secrets exec";

std::string lower(std::string s)
{
  if (!s.empty()) {
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  }
  return s;
}

Outcome fail(const std::string& message, const std::string& code, const std::string& fix, int exit)
{
  print(error_envelope(k_command, message, code, fix), stderr);
  return {nullptr, exit};
}

Outcome do_exec(const ExecOptions& o)
{
  try {
    // Before anything is opened: a pipe or socket of ours at fd 1 or 2 would
    // get the child's output (tests/e2e/test_exec.py, ExecClosedStdio).
    util::open_stdio_if_closed();
  } catch (const util::Error& e) {
    return fail(e.what(), "io", "ls -l /dev/null", exit_code::error);
  }
  if (o.argv.empty()) {
    return fail("no command to run", "usage", "secrets exec --secret NAME=VAR -- CMD ARGS...", exit_code::usage);
  }
  if (o.on_leak != "warn" && o.on_leak != "revoke" && o.on_leak != "rotate") {
    return fail("invalid --on-leak \"" + o.on_leak + "\": expected warn, revoke or rotate", "usage",
                "secrets exec --on-leak revoke -- " + o.argv.front(), exit_code::usage);
  }
  if (o.no_masking && o.on_leak != "warn") {
    return fail("--on-leak " + o.on_leak + " needs the masking filter, which --no-masking turns off", "usage",
                "secrets exec --on-leak " + o.on_leak + " -- " + o.argv.front(), exit_code::usage);
  }
  if (!o.max_lifetime.empty() && (!o.renew || !util::parse_duration(o.max_lifetime)
                                  || *util::parse_duration(o.max_lifetime) <= util::Duration::zero())) {
    return fail("--max-lifetime takes a positive duration and goes with --renew", "usage",
                "secrets exec --renew --max-lifetime 2h -- " + o.argv.front(), exit_code::usage);
  }
  const auto grace = util::parse_duration(o.kill_grace);
  if (!grace || *grace < util::Duration::zero()) {
    return fail("invalid --kill-grace \"" + o.kill_grace + "\": expected a duration such as 5s or 500ms", "usage",
                "secrets exec --kill-grace 10s -- " + o.argv.front(), exit_code::usage);
  }
  const auto kill_grace = std::chrono::duration_cast<std::chrono::milliseconds>(*grace);
  std::vector<HeldLease> held;
  try {
    const Project project = load_project(o.file, o.secrets);
    if (project.secrets.empty()) {
      return fail("no secrets listed in " + project.source, "usage",
                  "secrets exec --secret NAME=VAR -- " + o.argv.front(), exit_code::usage);
    }
    const std::string client_id = !o.client_id.empty() ? o.client_id
                                  : !project.client_id.empty() ? project.client_id
                                                               : std::string("exec");
    held = take_leases(project, o, client_id);
  } catch (...) {
    const Failure f = failure_from_current_exception();
    return fail(f.message, f.code, f.fix, f.exit);
  }

  int exit = exit_code::error;
  try {
    exit = run_command(o, held, kill_grace);
  } catch (const util::SpawnError& e) {
    revoke_all(held);
    wipe_all(held);
    const int err = e.error_number();
    const bool missing = err == ENOENT;
    return fail("failed to run " + o.argv.front() + ": " + lower(std::strerror(err)), missing ? "not_found" : "io",
                missing ? "command -v " + o.argv.front() + "  # check the command is on PATH"
                        : "ls -l \"$(command -v " + o.argv.front() + ")\"  # check it is executable",
                missing ? 127 : 126);
  } catch (...) {
    revoke_all(held);
    wipe_all(held);
    const Failure f = failure_from_current_exception();
    return fail(f.message, f.code, f.fix, f.exit);
  }
  revoke_all(held);
  wipe_all(held);
  return {nullptr, exit};
}

} // namespace

void add_exec_command(CLI::App& app, CommandAction& action)
{
  static ExecOptions o;
  auto* exec = app.add_subcommand("exec", "run a command with leased secrets in its environment (masked output)");
  exec->add_option("--ttl", o.ttl, "lease duration for every secret, e.g. 30m (default: per secret, or config)");
  exec->add_option("--client-id", o.client_id, "who holds the leases (default: .secrets.json, else exec)");
  exec->add_flag("--no-masking", o.no_masking, "pass the command's stdout and stderr through unfiltered");
  exec->add_flag("--renew", o.renew, "renew the leases at two thirds of their TTL while the command runs");
  exec->add_option("--max-lifetime", o.max_lifetime, "with --renew: stop renewing after this long, e.g. 8h");
  exec->add_option("--on-leak", o.on_leak,
                   "when the command prints a leased value: warn (audit it), revoke (and stop the command), "
                   "or rotate (revoke and run the secret's rotation hook); default warn");
  exec->add_option("--kill-grace", o.kill_grace,
                   "when a lease ends, how long the command has between SIGTERM and SIGKILL (default 5s)");
  exec->add_option("--file", o.file, "the .secrets.json to use (default: looked up from the cwd upwards)");
  exec->add_option("--secret", o.secrets, "NAME[=ENV_VAR]; repeatable; replaces .secrets.json")
    ->allow_extra_args(false); // one value per flag, so that -- is never taken as one
  // CMD ARGS... go after --: from there on everything is the command's, even
  // words that look like options or name a secrets subcommand (env).
  exec->add_option("command", o.argv, "the command and its arguments, after --");
  exec->callback([&action] { action = [] { return do_exec(o); }; });
}

} // namespace cmd
