// `secrets mcp`: an MCP server on stdio (newline-delimited JSON-RPC 2.0).
// stdout carries only MCP messages; logs go to stderr; EOF on stdin ends it.
// Every tool is one request to the daemon on a fresh connection (call()).
// Business failures (daemon down, not found, bad arguments) are tool results
// with isError: true, so the model can read the message and the fix; protocol
// failures (bad JSON, unknown method or tool) are JSON-RPC errors.

#include "cmd/mcp.hpp"

#include "rpc/protocol.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <string.h> // explicit_bzero
#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace cmd {
namespace {

// Newest first: an unsupported client version gets the newest.
constexpr std::array k_protocol_versions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

struct Tool
{
  const char* name;
  const char* description;
  json properties;
  std::vector<std::string> required;
  bool read_only;
  bool destructive;
  bool idempotent;
  std::function<json(const json& args)> run;
};

void wipe(std::string& s)
{
  explicit_bzero(s.data(), s.size());
}

[[noreturn]] void bad_argument(const std::string& tool, const std::string& message)
{
  throw util::Error(util::Errc::invalid_params, tool + ": " + message, "see the tool's inputSchema (tools/list)");
}

// Checks the arguments against the schema: no unknown keys, required ones
// present, each of the declared JSON type.
void check_arguments(const Tool& tool, const json& args)
{
  for (const auto& [key, value] : args.items()) {
    if (!tool.properties.contains(key)) {
      bad_argument(tool.name, "unknown argument " + key);
    }
    const std::string type = tool.properties[key]["type"];
    const bool ok = type == "string"    ? value.is_string()
                    : type == "boolean" ? value.is_boolean()
                    : type == "integer" ? value.is_number_integer() && value.get<long long>() >= 0
                                        : false;
    if (!ok) {
      bad_argument(tool.name, key + " must be " + (type == "integer" ? "a non-negative integer" : "a " + type));
    }
  }
  for (const auto& key : tool.required) {
    if (!args.contains(key) || (args[key].is_string() && args[key].get_ref<const std::string&>().empty())) {
      bad_argument(tool.name, "missing argument " + key);
    }
  }
}

json lease(const json& args)
{
  json result = call("secrets.lease", {{"secret_name", args["name"]},
                                       {"client_id", args.value("client_id", std::string("mcp"))},
                                       {"ttl", args.value("ttl", std::string())}});
  if (args.value("reveal", false)) {
    return result;
  }
  wipe(result["value"].get_ref<std::string&>());
  return {{"lease_id", result["lease_id"]},
          {"expires_at", result["expires_at"]},
          {"secret_name", args["name"]},
          {"revealed", false},
          {"hint", "the value was not returned; use `secrets exec --secret NAME -- CMD` to run a command "
                   "with it, or call secrets_lease with reveal: true only if you must see it"}};
}

std::vector<Tool> tools()
{
  return {
    {"secrets_list", "List stored secrets: names, dates, rotation hooks and active lease counts. Never values.",
     json::object(), {}, true, false, true, [](const json&) { return call("secrets.list"); }},
    {"secrets_status", "The daemon's state: uptime, secret and lease counts, heartbeat and killswitch.",
     json::object(), {}, true, false, true, [](const json&) { return call("secrets.status"); }},
    {"secrets_lease",
     "Take a time-bounded, audited lease on a secret. By default (reveal: false) only the lease id and "
     "expiry come back, not the value; set reveal: true only when you must see the raw value, and never "
     "echo it or write it to a file.",
     {{"name", {{"type", "string"}, {"description", "secret name (see secrets_list)"}}},
      {"ttl", {{"type", "string"}, {"description", "lease duration such as 30m or 1h; default from config"}}},
      {"client_id", {{"type", "string"}, {"description", "who holds the lease, recorded in the audit log"},
                     {"default", "mcp"}}},
      {"reveal", {{"type", "boolean"}, {"description", "return the secret value too"}, {"default", false}}}},
     {"name"}, false, false, false, lease},
    {"secrets_revoke", "End one lease now. Commands run with it by `secrets exec` are stopped, its .env files deleted.",
     {{"lease_id", {{"type", "string"}, {"description", "the lease id from secrets_lease"}}}},
     {"lease_id"}, false, true, true,
     [](const json& args) { return call("secrets.revoke", {{"lease_id", args["lease_id"]}}); }},
    {"secrets_audit", "Recent entries of the hash-chained audit log (who leased what, when). Never values.",
     {{"tail", {{"type", "integer"}, {"minimum", 0}, {"default", 20},
                {"description", "how many of the latest entries; 0 means all"}}}},
     {}, true, false, true, [](const json& args) { return call("secrets.audit", {{"tail", args.value("tail", 20)}}); }},
    {"secrets_revoke_all",
     "KILLSWITCH: revoke every active lease at once, stopping every holder. Use when a secret may have "
     "leaked. Requires confirm: true.",
     {{"confirm", {{"type", "boolean"}, {"const", true}, {"description", "must be true"}}}},
     {"confirm"}, false, true, true,
     [](const json& args) {
       if (args["confirm"] != true) {
         throw util::Error(util::Errc::invalid_params,
                           "secrets_revoke_all ends every lease; refused without confirm: true",
                           "call secrets_revoke_all with {\"confirm\": true}");
       }
       return call("secrets.revokeAll", {{"rotate", false}, {"wipe", false}});
     }},
  };
}

json tool_json(const Tool& t)
{
  json schema = {{"type", "object"}, {"properties", t.properties}, {"additionalProperties", false}};
  if (!t.required.empty()) {
    schema["required"] = t.required;
  }
  return {{"name", t.name},
          {"description", t.description},
          {"inputSchema", schema},
          {"annotations",
           {{"readOnlyHint", t.read_only},
            {"destructiveHint", t.destructive},
            {"idempotentHint", t.idempotent},
            {"openWorldHint", false}}}};
}

json text_result(const std::string& text, bool is_error)
{
  return {{"content", json::array({{{"type", "text"}, {"text", text}}})}, {"isError", is_error}};
}

struct ProtocolError
{
  int code;
  std::string message;
};

json call_tool(const std::vector<Tool>& all, const json& params)
{
  if (!params.contains("name") || !params["name"].is_string()) {
    throw ProtocolError{rpc::code::invalid_params, "tools/call needs a string name"};
  }
  const std::string name = params["name"];
  const auto tool = std::find_if(all.begin(), all.end(), [&](const Tool& t) { return name == t.name; });
  if (tool == all.end()) {
    throw ProtocolError{rpc::code::invalid_params, "unknown tool: " + name};
  }
  const json args = params.contains("arguments") && !params["arguments"].is_null() ? params["arguments"] : json::object();
  if (!args.is_object()) {
    throw ProtocolError{rpc::code::invalid_params, "tools/call arguments must be an object"};
  }
  std::fprintf(stderr, "secrets mcp: %s\n", name.c_str());
  try {
    check_arguments(*tool, args);
    json result = tool->run(args);
    json out = text_result(result.dump(2), false);
    if (result.contains("value") && result["value"].is_string()) {
      wipe(result["value"].get_ref<std::string&>());
    }
    return out;
  } catch (...) {
    const Failure f = failure_from_current_exception();
    std::fprintf(stderr, "secrets mcp: %s failed: %s\n", name.c_str(), f.message.c_str());
    const std::string fix = !f.fix.empty()                 ? f.fix
                            : f.code == "invalid_params" ? "correct the arguments (see the tool's inputSchema)"
                                                         : "call secrets_status to check the daemon";
    return text_result("error (" + f.code + "): " + f.message + "\nfix: " + fix, true);
  }
}

json handle(const std::vector<Tool>& all, const std::string& method, const json& params)
{
  if (method == "initialize") {
    if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
      throw ProtocolError{rpc::code::invalid_params, "initialize needs a string protocolVersion"};
    }
    const std::string asked = params["protocolVersion"];
    const bool known = std::find(k_protocol_versions.begin(), k_protocol_versions.end(), asked) != k_protocol_versions.end();
    return {{"protocolVersion", known ? asked : std::string(k_protocol_versions.front())},
            {"capabilities", {{"tools", {{"listChanged", false}}}}},
            {"serverInfo", {{"name", "agent-secrets"}, {"version", AGENT_SECRETS_VERSION}}},
            {"instructions", "Secrets live in the agent-secrets daemon. Lease them (secrets_lease, value hidden "
                             "unless reveal: true); prefer `secrets exec` to put values in a command's environment. "
                             "Never echo a value or write it to a file. secrets_revoke_all is the killswitch."}};
  }
  if (method == "ping") {
    return json::object();
  }
  if (method == "tools/list") {
    json list = json::array();
    for (const auto& t : all) {
      list.push_back(tool_json(t));
    }
    return {{"tools", list}};
  }
  if (method == "tools/call") {
    return call_tool(all, params);
  }
  throw ProtocolError{rpc::code::method_not_found, "method not found: " + method};
}

void send(const json& message)
{
  std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  util::write_all(STDOUT_FILENO, line, "stdout");
  wipe(line);
}

// One line in, at most one line out (none for a notification or a response).
void serve_line(const std::vector<Tool>& all, const std::string& line)
{
  json msg;
  try {
    msg = json::parse(line);
  } catch (const json::parse_error& e) {
    send(rpc::make_error(nullptr, rpc::code::parse_error, std::string("parse error: ") + e.what()));
    return;
  }
  if (!msg.is_object() || !msg.contains("jsonrpc") || msg["jsonrpc"] != "2.0") {
    send(rpc::make_error(nullptr, rpc::code::invalid_request, "not a JSON-RPC 2.0 object"));
    return;
  }
  if (!msg.contains("method")) {
    return; // a response to a request we never send
  }
  if (!msg.contains("id")) {
    return; // notifications/initialized, notifications/cancelled, ...
  }
  const json id = msg["id"];
  if (!msg["method"].is_string() || !(id.is_string() || id.is_number_integer())) {
    send(rpc::make_error(id.is_string() || id.is_number_integer() ? id : json(nullptr), rpc::code::invalid_request,
                         "a request needs a string method and a string or integer id"));
    return;
  }
  const json params = msg.contains("params") ? msg["params"] : json::object();
  if (!params.is_object()) {
    send(rpc::make_error(id, rpc::code::invalid_params, "params must be an object"));
    return;
  }
  try {
    send(rpc::make_result(id, handle(all, msg["method"], params)));
  } catch (const ProtocolError& e) {
    send(rpc::make_error(id, e.code, e.message));
  } catch (const std::exception& e) {
    send(rpc::make_error(id, rpc::code::internal, std::string("internal error: ") + e.what()));
  }
}

Outcome serve_mcp()
{
  const auto all = tools();
  std::fprintf(stderr, "secrets mcp: serving MCP on stdio\n");
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.find_first_not_of(" \t") != std::string::npos) {
      serve_line(all, line);
    }
  }
  return {nullptr};
}

} // namespace

void add_mcp_command(CLI::App& app, CommandAction& action)
{
  auto* mcp = app.add_subcommand("mcp", "serve the Model Context Protocol on stdio (for Claude Code, Cursor, ...)");
  mcp->callback([&action] { action = serve_mcp; });
}

} // namespace cmd
