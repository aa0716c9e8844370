#pragma once
// Proxy-only secrets (DESIGN.md section 10): what `secrets add --proxy-only`
// accepts, and the scope checks the proxy applies to each request.
//
// Contract: pure functions, any thread. make_spec throws
// util::Error(Errc::invalid_params) with a fix; everything else is total.

#include "store/store.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxy {

struct Url
{
  std::string scheme; // "http" or "https"
  std::string host;   // as written: a name, an IPv4 address or "[v6]"
  std::string port;   // empty: the scheme's default
  std::string path;   // "" or "/a/b", without a trailing slash

  // scheme://host[:port]
  std::string origin() const;
};

// base_url: https://, or http:// only for a loopback host (the credential must
// not cross a network in the clear); no user info, query or fragment.
std::optional<Url> parse_base_url(std::string_view text, std::string* why = nullptr);

struct Injection
{
  enum class Kind { bearer, basic, header, query, body };
  Kind kind = Kind::bearer;
  std::string name; // header or query parameter name
};

std::optional<Injection> parse_injection(std::string_view text);

// Validates and fills the defaults: methods upper-cased (none: any), paths
// default to base_url's path ("/" when it has none), inject to bearer.
store::ProxySpec make_spec(const std::string& base_url, const std::vector<std::string>& methods,
                           const std::vector<std::string>& paths, const std::string& inject);

bool method_allowed(const store::ProxySpec& spec, std::string_view method);
// A prefix matches on a segment boundary: "/v1" allows "/v1" and "/v1/x", not "/v1x".
bool path_allowed(const store::ProxySpec& spec, std::string_view path);

// A path the upstream could resolve outside its prefix: "." or ".." segments,
// their percent-encoded forms, encoded slashes or backslashes.
bool has_dot_segments(std::string_view path);

// "/NAME/rest?q" -> {NAME, "/rest", "q"}; nullopt for anything but an
// origin-form target with a valid secret name.
struct Route
{
  std::string name;
  std::string rest;  // "" or "/..."
  std::string query; // without '?'
};
std::optional<Route> split_target(std::string_view target);

} // namespace proxy
