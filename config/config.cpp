#include "config/config.hpp"

#include "util/error.hpp"
#include "util/file.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <vector>

namespace config {

namespace {

using nlohmann::ordered_json;
using namespace std::chrono_literals;

// Written by the Go daemon's Config.Save; the files they name have fixed
// places here (DESIGN.md section 2), so the keys are accepted and ignored.
constexpr std::array<std::string_view, 4> k_go_path_keys = {
  "identity_path", "secrets_path", "audit_path", "leases_path"};

// Long enough to show a typo, short enough to keep one line readable.
constexpr size_t k_max_shown_value = 40;

std::string join_path(const std::string& prefix, std::string_view key)
{
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

std::string quoted(const std::string& key_path)
{
  return "\"" + key_path + "\"";
}

// A value as the user wrote it, for "got ..." in messages.
std::string describe(const ordered_json& value)
{
  if (value.is_object()) {
    return "an object";
  }
  if (value.is_array()) {
    return "an array";
  }
  std::string text = value.dump();
  if (text.size() > k_max_shown_value) {
    size_t cut = k_max_shown_value;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut; // do not split a UTF-8 sequence
    }
    text = text.substr(0, cut) + "...";
  }
  return text;
}

// "1h0m0s" -> "1h", "1m0s" -> "1m": the form the Go README shows.
std::string short_duration(util::Duration d)
{
  std::string text = util::format_duration(d);
  if (text.size() > 3 && text.ends_with("m0s")) {
    text.resize(text.size() - 2);
  }
  if (text.size() > 3 && text.ends_with("h0m")) {
    text.resize(text.size() - 2);
  }
  return text;
}

bool starts_with_icase(std::string_view text, std::string_view prefix)
{
  return text.size() >= prefix.size()
         && std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            });
}

// "off", or host:port with a port from 1 to 65535. An IPv6 host is bracketed.
// The proxy hands out requests that carry real credentials: it listens on
// loopback only. Port 0 asks the kernel for a free port (`secrets status`
// shows which).
bool valid_listen(std::string_view listen)
{
  if (listen == "off") {
    return true;
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return false;
  }
  const std::string_view host = listen.substr(0, colon);
  const std::string_view port = listen.substr(colon + 1);
  const bool ipv4_loopback = host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string_view::npos
                             && std::count(host.begin(), host.end(), '.') == 3;
  if (host != "localhost" && host != "[::1]" && !ipv4_loopback) {
    return false;
  }
  if (port.empty() || port.size() > 5) {
    return false;
  }
  unsigned value = 0;
  for (char ch : port) {
    if (ch < '0' || ch > '9') {
      return false;
    }
    value = value * 10 + static_cast<unsigned>(ch - '0');
  }
  return value <= 65535;
}

// 1-based line of the byte nlohmann reports (the last one it read).
size_t line_of(std::string_view text, size_t byte)
{
  const size_t end = std::min(byte > 0 ? byte - 1 : 0, text.size());
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
}

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line
// 3, column 5: syntax error ... - <reason>[; last read: '<raw bytes>'][;
// expected <token>]". Keep the reason and the expectation, and drop the raw
// bytes: they may be part of a URL token, and may be invalid UTF-8 that would
// make the error unprintable in a JSON envelope.
std::string parse_error_reason(const std::string& what)
{
  const size_t start = what.find("parse error");
  const size_t sep = start == std::string::npos ? std::string::npos : what.find(": ", start);
  std::string reason = sep == std::string::npos ? what : what.substr(sep + 2);
  const size_t last_read = reason.find("; last read: ");
  if (last_read == std::string::npos) {
    return reason;
  }
  std::string expected;
  if (const size_t pos = reason.rfind("; expected "); pos != std::string::npos && pos > last_read) {
    static constexpr std::array<std::string_view, 14> k_token_names = {
      "true literal", "false literal", "null literal", "string literal", "number literal", "'['", "'{'",
      "']'", "'}'", "':'", "','", "end of input", "'[', '{', or a literal", "unknown token"};
    const std::string_view name = std::string_view(reason).substr(pos + 11);
    if (std::find(k_token_names.begin(), k_token_names.end(), name) != k_token_names.end()) {
      expected = reason.substr(pos);
    }
  }
  reason.resize(last_read);
  return reason + expected;
}

class Reader
{
public:
  explicit Reader(const std::string& source_path) : m_source_path(source_path) {}

  [[noreturn]] void fail(const std::string& message) const
  {
    throw util::Error(util::Errc::invalid_params, "config.json: " + message, "edit " + m_source_path);
  }

  ordered_json parse_json(std::string_view text) const
  {
    // nlohmann keeps the last of duplicate keys silently; in a security
    // setting ("enabled": true ... "enabled": false) that hides intent.
    struct Frame
    {
      std::set<std::string> seen;
      std::string key;
    };
    std::vector<Frame> frames;
    const auto on_event = [&](int, ordered_json::parse_event_t event, ordered_json& parsed) {
      switch (event) {
      case ordered_json::parse_event_t::object_start:
      case ordered_json::parse_event_t::array_start:
        frames.emplace_back();
        break;
      case ordered_json::parse_event_t::object_end:
      case ordered_json::parse_event_t::array_end:
        frames.pop_back();
        break;
      case ordered_json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!frames.back().seen.insert(key).second) {
          std::string path;
          for (size_t i = 0; i + 1 < frames.size(); ++i) {
            if (!frames[i].key.empty()) {
              path = join_path(path, frames[i].key);
            }
          }
          fail("duplicate key " + quoted(join_path(path, key)));
        }
        frames.back().key = key;
        break;
      }
      case ordered_json::parse_event_t::value:
        break;
      }
      return true;
    };
    try {
      return ordered_json::parse(text, on_event);
    } catch (const ordered_json::parse_error& e) {
      fail("line " + std::to_string(line_of(text, e.byte)) + ": invalid JSON (" + parse_error_reason(e.what()) + ")");
    } catch (const ordered_json::out_of_range&) {
      fail("invalid JSON (a number is out of range, e.g. 1e999)"); // found by fuzz/fuzz_config.cpp
    }
  }

  void check_keys(const ordered_json& object,
                  const std::string& prefix,
                  std::initializer_list<std::string_view> known,
                  bool accept_go_path_keys = false) const
  {
    for (const auto& [key, value] : object.items()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) {
        continue;
      }
      if (accept_go_path_keys && std::find(k_go_path_keys.begin(), k_go_path_keys.end(), key) != k_go_path_keys.end()) {
        if (!value.is_string()) {
          fail(quoted(join_path(prefix, key)) + " must be a string, got " + describe(value));
        }
        continue;
      }
      std::string list;
      for (std::string_view name : known) {
        list += (list.empty() ? "" : ", ") + std::string(name);
      }
      fail("unknown key " + quoted(join_path(prefix, key)) + " (known: " + list + ")");
    }
  }

  // The object at `key`, or nullptr when absent.
  const ordered_json* object(const ordered_json& parent, const std::string& prefix, std::string_view key) const
  {
    const ordered_json* value = find(parent, key);
    if (value && !value->is_object()) {
      fail(quoted(join_path(prefix, key)) + " must be an object, got " + describe(*value));
    }
    return value;
  }

  void read(const ordered_json& parent, const std::string& prefix, std::string_view key, bool& out) const
  {
    if (const ordered_json* value = find(parent, key)) {
      if (!value->is_boolean()) {
        fail(quoted(join_path(prefix, key)) + " must be true or false, got " + describe(*value));
      }
      out = value->get<bool>();
    }
  }

  void read(const ordered_json& parent, const std::string& prefix, std::string_view key, std::string& out) const
  {
    if (const ordered_json* value = find(parent, key)) {
      if (!value->is_string()) {
        fail(quoted(join_path(prefix, key)) + " must be a string, got " + describe(*value));
      }
      out = value->get<std::string>();
    }
  }

  void read(const ordered_json& parent, const std::string& prefix, std::string_view key, util::Duration& out) const
  {
    const ordered_json* value = find(parent, key);
    if (!value) {
      return;
    }
    const std::string path = quoted(join_path(prefix, key));
    const std::string forms =
      " must be a duration: a string like \"" + short_duration(out) + "\" or integer nanoseconds, got ";
    if (value->is_string()) {
      const std::optional<util::Duration> parsed = util::parse_duration(value->get_ref<const std::string&>());
      if (!parsed) {
        fail(path + forms + describe(*value));
      }
      if (*parsed <= 0ns) {
        fail(path + " must be greater than zero, got " + describe(*value));
      }
      out = *parsed;
      return;
    }
    if (!value->is_number_integer()) {
      fail(path + forms + describe(*value)); // floats, booleans, objects...
    }
    if (value->is_number_unsigned()
        && value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path + " is too long, got " + describe(*value));
    }
    const int64_t nanoseconds = value->get<int64_t>();
    if (nanoseconds == 0) {
      return; // Go's zero value: the Go code reads it as "use the default"
    }
    if (nanoseconds < 0) {
      fail(path + " must be greater than zero, got " + describe(*value));
    }
    out = util::Duration(nanoseconds);
  }

  // A JSON integer from `min` to `max`; `what` says what it counts.
  uint64_t read_count(const ordered_json& parent,
                      const std::string& prefix,
                      std::string_view key,
                      uint64_t current,
                      uint64_t min,
                      uint64_t max,
                      const std::string& what) const
  {
    const ordered_json* value = find(parent, key);
    if (!value) {
      return current;
    }
    if (!value->is_number_unsigned() || value->get<uint64_t>() < min || value->get<uint64_t>() > max) {
      std::string range = "at least " + std::to_string(min);
      if (max != std::numeric_limits<uint64_t>::max()) {
        range = "from " + std::to_string(min) + " to " + std::to_string(max);
      }
      fail(quoted(join_path(prefix, key)) + " must be an integer " + range + " (" + what + "), got "
           + describe(*value));
    }
    return value->get<uint64_t>();
  }

private:
  static const ordered_json* find(const ordered_json& parent, std::string_view key)
  {
    const auto it = parent.find(key);
    return it == parent.end() ? nullptr : &*it;
  }

  std::string m_source_path;
};

Config defaults_for(const util::Paths& paths)
{
  Config c;
  c.directory = paths.home;
  c.socket_path = paths.socket;
  return c;
}

void read_heartbeat(const Reader& r, const ordered_json& object, Heartbeat& hb)
{
  const std::string prefix = "heartbeat";
  r.check_keys(object, prefix, {"enabled", "url", "interval", "timeout", "fail_action"});
  r.read(object, prefix, "enabled", hb.enabled);
  r.read(object, prefix, "url", hb.url);
  r.read(object, prefix, "interval", hb.interval);
  r.read(object, prefix, "timeout", hb.timeout);
  if (const ordered_json* fa = r.object(object, prefix, "fail_action")) {
    const std::string fa_prefix = "heartbeat.fail_action";
    r.check_keys(*fa, fa_prefix, {"revoke_all", "rotate_all", "wipe_store"});
    r.read(*fa, fa_prefix, "revoke_all", hb.fail_action.revoke_all);
    r.read(*fa, fa_prefix, "rotate_all", hb.fail_action.rotate_all);
    r.read(*fa, fa_prefix, "wipe_store", hb.fail_action.wipe_store);
  }

  // The URL may carry a token, so messages never echo it.
  if (!hb.url.empty() && !starts_with_icase(hb.url, "http://") && !starts_with_icase(hb.url, "https://")) {
    r.fail("\"heartbeat.url\" must start with http:// or https://");
  }
  if (hb.enabled && hb.url.empty()) {
    r.fail("\"heartbeat.enabled\" is true but \"heartbeat.url\" is not set (an http:// or https:// URL)");
  }
  if (hb.interval < 1s) {
    r.fail("\"heartbeat.interval\" must be at least 1s, got \"" + util::format_duration(hb.interval) + "\"");
  }
}

void read_proxy(const Reader& r, const ordered_json& object, Proxy& proxy)
{
  const std::string prefix = "proxy";
  r.check_keys(object,
               prefix,
               {"listen", "ca_file", "max_body_bytes", "connect_timeout", "total_timeout", "max_concurrent"});
  r.read(object, prefix, "listen", proxy.listen);
  r.read(object, prefix, "ca_file", proxy.ca_file);
  proxy.max_body_bytes = r.read_count(object,
                                      prefix,
                                      "max_body_bytes",
                                      proxy.max_body_bytes,
                                      1,
                                      std::numeric_limits<uint64_t>::max(),
                                      "bytes");
  r.read(object, prefix, "connect_timeout", proxy.connect_timeout);
  r.read(object, prefix, "total_timeout", proxy.total_timeout);
  proxy.max_concurrent = static_cast<int>(r.read_count(object,
                                                       prefix,
                                                       "max_concurrent",
                                                       static_cast<uint64_t>(proxy.max_concurrent),
                                                       1,
                                                       static_cast<uint64_t>(std::numeric_limits<int>::max()),
                                                       "upstream transfers"));

  if (!valid_listen(proxy.listen)) {
    r.fail("\"proxy.listen\" must be \"off\" or a loopback host:port (127.0.0.1, [::1] or localhost; port 0 "
           "picks a free one), got "
           + describe(ordered_json(proxy.listen)));
  }
}

} // namespace

Config parse(std::string_view text, const util::Paths& paths, const std::string& source_path)
{
  const Reader r(source_path);
  const ordered_json root = r.parse_json(text);
  if (!root.is_object()) {
    r.fail("the top level must be an object, got " + describe(root));
  }

  Config c = defaults_for(paths);
  r.check_keys(root,
               "",
               {"directory",
                "socket_path",
                "default_lease_ttl",
                "max_lease_ttl",
                "rotation_timeout",
                "heartbeat",
                "proxy"},
               true);
  r.read(root, "", "directory", c.directory);
  r.read(root, "", "socket_path", c.socket_path);
  r.read(root, "", "default_lease_ttl", c.default_lease_ttl);
  r.read(root, "", "max_lease_ttl", c.max_lease_ttl);
  r.read(root, "", "rotation_timeout", c.rotation_timeout);
  if (const ordered_json* hb = r.object(root, "", "heartbeat")) {
    read_heartbeat(r, *hb, c.heartbeat);
  }
  if (const ordered_json* proxy = r.object(root, "", "proxy")) {
    read_proxy(r, *proxy, c.proxy);
  }

  if (c.directory.empty()) {
    r.fail("\"directory\" must not be empty");
  }
  // The daemon and every client must agree on it whatever their cwd.
  if (!c.socket_path.starts_with('/')) {
    r.fail("\"socket_path\" must be an absolute path, got " + describe(ordered_json(c.socket_path)));
  }
  if (c.default_lease_ttl > c.max_lease_ttl) {
    r.fail("\"default_lease_ttl\" (" + util::format_duration(c.default_lease_ttl) + ") must not exceed \"max_lease_ttl\" ("
           + util::format_duration(c.max_lease_ttl) + ")");
  }
  return c;
}

Config load(const util::Paths& paths)
{
  const std::optional<std::string> text = util::read_file_if_exists(paths.config);
  Config c = text ? parse(*text, paths, paths.config) : defaults_for(paths);
  if (const char* socket = std::getenv("AGENT_SECRETS_SOCKET"); socket && *socket) {
    c.socket_path = socket;
  }
  return c;
}

nlohmann::ordered_json to_json(const Config& c)
{
  ordered_json fail_action;
  fail_action["revoke_all"] = c.heartbeat.fail_action.revoke_all;
  fail_action["rotate_all"] = c.heartbeat.fail_action.rotate_all;
  fail_action["wipe_store"] = c.heartbeat.fail_action.wipe_store;

  ordered_json heartbeat;
  heartbeat["enabled"] = c.heartbeat.enabled;
  heartbeat["url"] = c.heartbeat.url;
  heartbeat["interval"] = util::format_duration(c.heartbeat.interval);
  heartbeat["timeout"] = util::format_duration(c.heartbeat.timeout);
  heartbeat["fail_action"] = std::move(fail_action);

  ordered_json proxy;
  proxy["listen"] = c.proxy.listen;
  proxy["ca_file"] = c.proxy.ca_file;
  proxy["max_body_bytes"] = c.proxy.max_body_bytes;
  proxy["connect_timeout"] = util::format_duration(c.proxy.connect_timeout);
  proxy["total_timeout"] = util::format_duration(c.proxy.total_timeout);
  proxy["max_concurrent"] = c.proxy.max_concurrent;

  ordered_json j;
  j["directory"] = c.directory;
  j["socket_path"] = c.socket_path;
  j["default_lease_ttl"] = util::format_duration(c.default_lease_ttl);
  j["max_lease_ttl"] = util::format_duration(c.max_lease_ttl);
  j["rotation_timeout"] = util::format_duration(c.rotation_timeout);
  j["heartbeat"] = std::move(heartbeat);
  j["proxy"] = std::move(proxy);
  return j;
}

} // namespace config
