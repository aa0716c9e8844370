#include "config/config.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

namespace {

using namespace std::chrono_literals;

const util::Paths k_paths = util::paths_for("/home/u/.agent-secrets");
const std::string k_source = "/home/u/.agent-secrets/config.json";

config::Config parse(std::string_view text)
{
  return config::parse(text, k_paths, k_source);
}

// The message of the util::Error that parse throws; fails the test if none.
std::string error_of(std::string_view text)
{
  try {
    parse(text);
  } catch (const util::Error& e) {
    CHECK(e.code() == util::Errc::invalid_params);
    CHECK(e.fix() == "edit " + k_source);
    return e.what();
  }
  FAIL("no error for: " << text);
  return {};
}

using testutil::ScopedEnv;
using testutil::TempDir;

void check_defaults(const config::Config& c, const util::Paths& paths)
{
  CHECK(c.directory == paths.home);
  CHECK(c.socket_path == paths.home + "/agent-secrets.sock");
  CHECK(c.default_lease_ttl == 1h);
  CHECK(c.max_lease_ttl == 24h);
  CHECK(c.rotation_timeout == 30s);
  CHECK_FALSE(c.heartbeat.enabled);
  CHECK(c.heartbeat.url.empty());
  CHECK(c.heartbeat.interval == 1min);
  CHECK(c.heartbeat.timeout == 10s);
  CHECK(c.heartbeat.fail_action.revoke_all);
  CHECK_FALSE(c.heartbeat.fail_action.rotate_all);
  CHECK_FALSE(c.heartbeat.fail_action.wipe_store);
  CHECK(c.proxy.listen == "127.0.0.1:7700");
  CHECK(c.proxy.ca_file.empty());
  CHECK(c.proxy.max_body_bytes == 33554432);
  CHECK(c.proxy.connect_timeout == 10s);
  CHECK(c.proxy.total_timeout == 5min);
  CHECK(c.proxy.max_concurrent == 16);
}

} // namespace

TEST_CASE("config: a missing file means defaults")
{
  TempDir dir;
  const ScopedEnv no_socket("AGENT_SECRETS_SOCKET", nullptr);
  const util::Paths paths = util::paths_for(dir.path());
  check_defaults(config::load(paths), paths);
  check_defaults(parse("{}"), k_paths);
}

TEST_CASE("config: load reads the file and applies AGENT_SECRETS_SOCKET on top")
{
  TempDir dir;
  const util::Paths paths = util::paths_for(dir.path());
  util::write_file_atomic(paths.config, R"({"socket_path": "/run/x.sock", "max_lease_ttl": "48h"})");
  {
    const ScopedEnv no_socket("AGENT_SECRETS_SOCKET", nullptr);
    const config::Config c = config::load(paths);
    CHECK(c.socket_path == "/run/x.sock");
    CHECK(c.max_lease_ttl == 48h);
  }
  {
    const ScopedEnv socket("AGENT_SECRETS_SOCKET", "/tmp/override.sock");
    CHECK(config::load(paths).socket_path == "/tmp/override.sock");
  }
  util::write_file_atomic(paths.config, "{\"rotation_timeout\": \"soon\"}");
  CHECK_THROWS_AS(config::load(paths), util::Error);
}

TEST_CASE("config: a file the Go daemon wrote (integer nanoseconds, path keys)")
{
  // Go's Config.Save: json.MarshalIndent of the Config struct.
  const config::Config c = parse(R"({
  "directory": "/home/u/.agent-secrets",
  "socket_path": "/home/u/.agent-secrets/agent-secrets.sock",
  "identity_path": "/home/u/.agent-secrets/identity.age",
  "secrets_path": "/home/u/.agent-secrets/secrets.age",
  "audit_path": "/home/u/.agent-secrets/audit.log",
  "leases_path": "/home/u/.agent-secrets/leases.json",
  "default_lease_ttl": 3600000000000,
  "max_lease_ttl": 7200000000000,
  "rotation_timeout": 45000000000,
  "heartbeat": {
    "enabled": false,
    "interval": 0,
    "timeout": 0,
    "fail_action": {"revoke_all": false, "rotate_all": false, "wipe_store": false}
  }
})");
  CHECK(c.default_lease_ttl == 1h);
  CHECK(c.max_lease_ttl == 2h);
  CHECK(c.rotation_timeout == 45s);
  // Integer 0 is Go's zero value: the default.
  CHECK(c.heartbeat.interval == 1min);
  CHECK(c.heartbeat.timeout == 10s);
  CHECK_FALSE(c.heartbeat.fail_action.revoke_all);
  CHECK(parse(R"({"max_lease_ttl": 0})").max_lease_ttl == 24h);
  CHECK(parse(R"({"rotation_timeout": 1})").rotation_timeout == 1ns);
}

TEST_CASE("config: durations as strings and a nested heartbeat and proxy")
{
  const config::Config c = parse(R"({
    "default_lease_ttl": "30m", "max_lease_ttl": "1.5h", "rotation_timeout": "90s",
    "heartbeat": {"enabled": true, "url": "https://hb.example.com/ping?t=1", "interval": "2m",
                  "timeout": "500ms", "fail_action": {"rotate_all": true, "wipe_store": true}},
    "proxy": {"listen": "[::1]:8080", "ca_file": "/tmp/ca.pem", "max_body_bytes": 1024,
              "connect_timeout": "3s", "total_timeout": "1h", "max_concurrent": 4}
  })");
  CHECK(c.default_lease_ttl == 30min);
  CHECK(c.max_lease_ttl == 90min);
  CHECK(c.rotation_timeout == 90s);
  CHECK(c.heartbeat.enabled);
  CHECK(c.heartbeat.url == "https://hb.example.com/ping?t=1");
  CHECK(c.heartbeat.interval == 2min);
  CHECK(c.heartbeat.timeout == 500ms);
  CHECK(c.heartbeat.fail_action.revoke_all); // unset: default kept
  CHECK(c.heartbeat.fail_action.rotate_all);
  CHECK(c.heartbeat.fail_action.wipe_store);
  CHECK(c.proxy.listen == "[::1]:8080");
  CHECK(c.proxy.ca_file == "/tmp/ca.pem");
  CHECK(c.proxy.max_body_bytes == 1024);
  CHECK(c.proxy.connect_timeout == 3s);
  CHECK(c.proxy.total_timeout == 1h);
  CHECK(c.proxy.max_concurrent == 4);
  CHECK(parse(R"({"proxy": {"listen": "off"}})").proxy.listen == "off");
  CHECK(parse(R"({"proxy": {"listen": "localhost:1"}})").proxy.listen == "localhost:1");
  CHECK(parse(R"({"proxy": {"listen": "127.0.0.1:0"}})").proxy.listen == "127.0.0.1:0");
}

TEST_CASE("config: unknown keys are named with their dotted path")
{
  CHECK(error_of(R"({"max_lease_tll": "1h"})")
        == "config.json: unknown key \"max_lease_tll\" (known: directory, socket_path, default_lease_ttl, "
           "max_lease_ttl, rotation_timeout, heartbeat, proxy)");
  CHECK(error_of(R"({"heartbeat": {"intervall": "1m"}})")
        == "config.json: unknown key \"heartbeat.intervall\" (known: enabled, url, interval, timeout, fail_action)");
  CHECK(error_of(R"({"heartbeat": {"fail_action": {"wipe": true}}})")
        == "config.json: unknown key \"heartbeat.fail_action.wipe\" (known: revoke_all, rotate_all, wipe_store)");
  CHECK(error_of(R"({"proxy": {"port": 7700}})").starts_with("config.json: unknown key \"proxy.port\" (known: listen,"));
}

TEST_CASE("config: duplicate keys are an error")
{
  CHECK(error_of(R"({"heartbeat": {"enabled": true, "url": "http://x", "enabled": false}})")
        == "config.json: duplicate key \"heartbeat.enabled\"");
  CHECK(error_of(R"({"directory": "/a", "directory": "/b"})") == "config.json: duplicate key \"directory\"");
}

TEST_CASE("config: values of the wrong type")
{
  CHECK(error_of("[]") == "config.json: the top level must be an object, got an array");
  CHECK(error_of(R"({"heartbeat": true})") == "config.json: \"heartbeat\" must be an object, got true");
  CHECK(error_of(R"({"heartbeat": {"enabled": "yes"}})")
        == "config.json: \"heartbeat.enabled\" must be true or false, got \"yes\"");
  CHECK(error_of(R"({"directory": 5})") == "config.json: \"directory\" must be a string, got 5");
  CHECK(error_of(R"({"heartbeat": {"url": null}})") == "config.json: \"heartbeat.url\" must be a string, got null");
  CHECK(error_of(R"({"identity_path": 1})") == "config.json: \"identity_path\" must be a string, got 1");
  CHECK(error_of(R"({"proxy": {"max_body_bytes": 1.5}})")
        == "config.json: \"proxy.max_body_bytes\" must be an integer at least 1 (bytes), got 1.5");
  CHECK(error_of(R"({"proxy": {"max_concurrent": 0}})")
        == "config.json: \"proxy.max_concurrent\" must be an integer from 1 to 2147483647 (upstream transfers), got 0");
  CHECK(error_of(R"({"proxy": {"max_concurrent": "4"}})").starts_with("config.json: \"proxy.max_concurrent\" must be"));
}

TEST_CASE("config: bad durations")
{
  CHECK(error_of(R"({"max_lease_ttl": "forever"})")
        == "config.json: \"max_lease_ttl\" must be a duration: a string like \"24h\" or integer nanoseconds, "
           "got \"forever\"");
  CHECK(error_of(R"({"heartbeat": {"timeout": 1.5e9}})")
        == "config.json: \"heartbeat.timeout\" must be a duration: a string like \"10s\" or integer nanoseconds, "
           "got 1500000000.0");
  CHECK(error_of(R"({"rotation_timeout": true})").starts_with("config.json: \"rotation_timeout\" must be a duration"));
  CHECK(error_of(R"({"rotation_timeout": "30"})").starts_with("config.json: \"rotation_timeout\" must be a duration"));
  CHECK(error_of(R"({"rotation_timeout": "0s"})")
        == "config.json: \"rotation_timeout\" must be greater than zero, got \"0s\"");
  CHECK(error_of(R"({"rotation_timeout": "-5s"})")
        == "config.json: \"rotation_timeout\" must be greater than zero, got \"-5s\"");
  CHECK(error_of(R"({"rotation_timeout": -5})") == "config.json: \"rotation_timeout\" must be greater than zero, got -5");
  CHECK(error_of(R"({"rotation_timeout": 9223372036854775808})")
        == "config.json: \"rotation_timeout\" is too long, got 9223372036854775808");
  CHECK(error_of(R"({"proxy": {"total_timeout": "5 min"}})").starts_with("config.json: \"proxy.total_timeout\" must be a"));
}

TEST_CASE("config: semantic checks")
{
  CHECK(error_of(R"({"default_lease_ttl": "48h"})")
        == "config.json: \"default_lease_ttl\" (48h0m0s) must not exceed \"max_lease_ttl\" (24h0m0s)");
  CHECK(parse(R"({"default_lease_ttl": "24h"})").default_lease_ttl == 24h);
  CHECK(error_of(R"({"heartbeat": {"enabled": true}})")
        == "config.json: \"heartbeat.enabled\" is true but \"heartbeat.url\" is not set (an http:// or https:// URL)");
  // The URL may hold a token, so the message does not repeat it.
  CHECK(error_of(R"({"heartbeat": {"enabled": true, "url": "ftp://secret-token@x"}})")
        == "config.json: \"heartbeat.url\" must start with http:// or https://");
  CHECK(error_of(R"({"heartbeat": {"interval": "500ms"}})")
        == "config.json: \"heartbeat.interval\" must be at least 1s, got \"500ms\"");
  CHECK(error_of(R"({"socket_path": "relative.sock"})")
        == "config.json: \"socket_path\" must be an absolute path, got \"relative.sock\"");
  CHECK(error_of(R"({"directory": ""})") == "config.json: \"directory\" must not be empty");
  for (const char* bad : {"", "7700", ":7700", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http",
                          "::1:7700", "[::1]", "[]:80", "a b:80", "on", "0.0.0.0:7700", "[::]:7700",
                          "example.com:443", "10.0.0.1:7700", "127.0.0.1.nip.io:80"}) {
    CAPTURE(bad);
    const std::string text = std::string(R"({"proxy": {"listen": ")") + bad + "\"}}";
    CHECK(error_of(text).starts_with(
      "config.json: \"proxy.listen\" must be \"off\" or a loopback host:port (127.0.0.1, [::1] or localhost; port 0 "
      "picks a free one), got"));
  }
}

TEST_CASE("config: invalid JSON names the line")
{
  const std::string message = error_of("{\n  \"directory\": \"/a\",\n  \"max_lease_ttl\": \"1h\",,\n}\n");
  CHECK(message.starts_with("config.json: line 3: invalid JSON (syntax error"));
  CHECK(message.ends_with(")"));
  CHECK(message.find("json.exception") == std::string::npos);
  CHECK(error_of("").starts_with("config.json: line 1: invalid JSON ("));
  CHECK(error_of("{\"a\": 1\n\n").starts_with("config.json: line 3: invalid JSON ("));
  CHECK(error_of("// comment\n{}").starts_with("config.json: line 1: invalid JSON ("));
  // The bytes nlohmann last read are not repeated: they may be invalid UTF-8
  // or part of a secret URL.
  CHECK(error_of("{\"heartbeat\": {\"url\": \"https://x/?t=tok\xff\"}}")
        == "config.json: line 1: invalid JSON (syntax error while parsing value - invalid string: ill-formed UTF-8 "
           "byte)");
  CHECK(error_of("{\"a\xff\": 1}")
        == "config.json: line 1: invalid JSON (syntax error while parsing object key - invalid string: ill-formed "
           "UTF-8 byte; expected string literal)");
}

TEST_CASE("config: to_json round-trips through parse")
{
  config::Config c = parse("{}");
  c.default_lease_ttl = 90min;
  c.max_lease_ttl = 1500ms * 100000;
  c.rotation_timeout = 1ns;
  c.heartbeat.enabled = true;
  c.heartbeat.url = "http://127.0.0.1:9/hb";
  c.heartbeat.interval = 2s;
  c.heartbeat.fail_action = {false, true, true};
  c.proxy.listen = "off";
  c.proxy.max_body_bytes = 1;
  c.proxy.total_timeout = 36h;
  c.proxy.max_concurrent = 1;

  const nlohmann::ordered_json j = config::to_json(c);
  CHECK(j["default_lease_ttl"] == "1h30m0s");
  CHECK(j["heartbeat"]["fail_action"]["wipe_store"] == true);
  CHECK(j["proxy"]["max_body_bytes"] == 1);
  CHECK(parse(j.dump(2)) == c);
  CHECK(parse(config::to_json(parse("{}")).dump()) == parse("{}"));
}
