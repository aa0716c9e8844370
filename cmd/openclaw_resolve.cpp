// `secrets openclaw-resolve`: OpenClaw's exec secret-provider protocol.
//
//   stdin:  {"protocolVersion":1,"provider":"agent-secrets","ids":["github_token",...]}
//   stdout: {"protocolVersion":1,"values":{"github_token":"..."},"errors":{"x":{"message":"..."}}}
//
// Every id is one audited lease (client_id "openclaw" unless --client-id).
// It exits 0 whenever it answered, even when some ids failed; a request it
// cannot read gets an error envelope on stderr, nothing on stdout, and exit 2.

#include "cmd/command.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <unistd.h>

#include <cerrno>
#include <set>

namespace cmd {

namespace {

constexpr size_t k_max_request_bytes = 1 << 20;
constexpr const char* k_command = "secrets openclaw-resolve";
constexpr const char* k_example =
  R"(echo '{"protocolVersion":1,"provider":"agent-secrets","ids":["github_token"]}' | secrets openclaw-resolve)";

struct ResolveOptions
{
  std::string ttl;
  std::string client_id = "openclaw";
};

Outcome bad_request(const std::string& message)
{
  print(error_envelope(k_command, message, "invalid_params", k_example), stderr);
  return {nullptr, exit_code::usage};
}

// The whole of stdin, or nullopt past k_max_request_bytes.
Outcome resolve(const ResolveOptions& o)
{
  const auto text = util::read_fd(STDIN_FILENO, k_max_request_bytes, "the request from stdin");
  if (!text) {
    return bad_request("the request is larger than " + std::to_string(k_max_request_bytes) + " bytes");
  }
  const json request = json::parse(*text, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return bad_request("stdin is not a JSON object");
  }
  if (request.value("protocolVersion", json()) != json(1)) {
    return bad_request("unsupported protocolVersion (this resolver speaks 1)");
  }
  if (!request.contains("ids") || !request["ids"].is_array()) {
    return bad_request("\"ids\" must be an array of strings");
  }
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (const auto& id : request["ids"]) {
    if (!id.is_string()) {
      return bad_request("\"ids\" must be an array of strings");
    }
    if (seen.insert(id.get<std::string>()).second) {
      ids.push_back(id.get<std::string>());
    }
  }

  json values = json::object();
  json errors = json::object();
  std::string unreachable; // once the daemon is down, the other ids fail the same way
  for (const auto& id : ids) {
    if (!unreachable.empty()) {
      errors[id] = {{"message", unreachable}};
      continue;
    }
    try {
      json result = call("secrets.lease", {{"secret_name", id}, {"client_id", o.client_id}, {"ttl", o.ttl}});
      values[id] = std::move(result["value"]);
    } catch (...) {
      const Failure f = failure_from_current_exception();
      const std::string message = f.message + (f.fix.empty() ? "" : " (fix: " + f.fix + ")");
      if (f.code == "daemon_not_running") {
        unreachable = message;
      }
      errors[id] = {{"message", message}};
    }
  }

  json response = {{"protocolVersion", 1}, {"values", std::move(values)}, {"errors", std::move(errors)}};
  std::string out = response.dump() + "\n";
  for (auto& [id, value] : response["values"].items()) {
    util::wipe(value.get_ref<std::string&>());
  }
  try {
    util::write_all(STDOUT_FILENO, out, "the response to stdout");
  } catch (...) {
    util::wipe(out);
    throw;
  }
  util::wipe(out);
  return {nullptr};
}

} // namespace

void add_openclaw_resolve_command(CLI::App& app, CommandAction& action)
{
  static ResolveOptions o;
  auto* sub = app.add_subcommand("openclaw-resolve",
                                 "OpenClaw exec secret provider: a JSON request on stdin, leased values on stdout");
  sub->add_option("--ttl", o.ttl, "lease duration for every id, e.g. 1h (default from config)");
  sub->add_option("--client-id", o.client_id, "who holds the leases (audited; default openclaw)");
  sub->callback([&action] { action = [] { return resolve(o); }; });
}

} // namespace cmd
