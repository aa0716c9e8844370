#pragma once
// config.json (DESIGN.md sections 2, 8 and 10): read by the daemon and the CLI.
//
// Contract:
// - Every key is optional and a missing file means defaults. An unknown key, a
//   duplicate key, a wrong type or a bad value throws util::Error
//   (Errc::invalid_params) whose message names the dotted key path
//   ("heartbeat.interval") and the allowed form, with the fix "edit <path>".
// - Durations are a Go duration string ("1h", "90s") or integer nanoseconds,
//   which is what the Go daemon's Config.Save writes. Integer 0 is Go's zero
//   value, which the Go code treats as "use the default", so it means the
//   default here too. Every other duration must be greater than zero: the
//   string "0s", negative numbers, floats and booleans are errors.
// - The Go Config.Save also writes identity_path, secrets_path, audit_path and
//   leases_path. They are accepted (as strings) and ignored: the file names are
//   fixed relative to the home directory (DESIGN.md section 2).
// - `directory` is reported, not used to relocate anything: config.json itself
//   lives in the home directory, which AGENT_SECRETS_HOME chooses.
// - Permissions of config.json are the daemon's start-up check, not load's.
// Pure functions; safe to call from any thread.

#include "util/duration.hpp"
#include "util/paths.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace config {

// What the killswitch does after the heartbeat fails 3 times in a row.
struct FailAction
{
  bool revoke_all = true;
  bool rotate_all = false;
  bool wipe_store = false;

  bool operator==(const FailAction&) const = default;
};

struct Heartbeat
{
  bool enabled = false;
  std::string url; // http:// or https://; required when enabled
  util::Duration interval = std::chrono::minutes{1}; // at least 1s
  util::Duration timeout = std::chrono::seconds{10};
  FailAction fail_action;

  bool operator==(const Heartbeat&) const = default;
};

struct Proxy
{
  std::string listen = "127.0.0.1:7700"; // host:port, or "off"
  std::string ca_file; // an extra CA for upstream TLS (tests)
  uint64_t max_body_bytes = 32 * 1024 * 1024;
  util::Duration connect_timeout = std::chrono::seconds{10};
  util::Duration total_timeout = std::chrono::minutes{5};
  int max_concurrent = 16;

  bool operator==(const Proxy&) const = default;
};

struct Config
{
  std::string directory; // default: paths.home
  std::string socket_path; // default: paths.socket; absolute
  util::Duration default_lease_ttl = std::chrono::hours{1};
  util::Duration max_lease_ttl = std::chrono::hours{24}; // >= default_lease_ttl
  util::Duration rotation_timeout = std::chrono::seconds{30};
  Heartbeat heartbeat;
  Proxy proxy;

  bool operator==(const Config&) const = default;
};

// Parses the text of a config.json over the defaults for `paths`.
// `source_path` only names the file in the fix ("edit <source_path>").
// Throws util::Error(Errc::invalid_params), e.g.
//   config.json: unknown key "heartbeat.intervall" (known: enabled, url, ...)
//   config.json: line 3: invalid JSON (syntax error while parsing ...)
Config parse(std::string_view text, const util::Paths& paths, const std::string& source_path);

// Reads paths.config (missing: defaults), then applies the AGENT_SECRETS_SOCKET
// environment override on top of socket_path. Throws what parse throws, and
// util::Error(Errc::io) when the file exists but cannot be read.
Config load(const util::Paths& paths);

// The effective configuration for `secrets config`, durations as Go strings
// ("1h0m0s"). parse() accepts it back unchanged.
nlohmann::ordered_json to_json(const Config& c);

} // namespace config
