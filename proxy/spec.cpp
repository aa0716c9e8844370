#include "proxy/spec.hpp"

#include "util/error.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>

namespace proxy {

namespace {

using util::Errc;
using util::Error;

// A literal loopback address (127.0.0.0/8 as a dotted quad, ::1 in any
// spelling), or "localhost". Not any name that starts with "127.": DNS
// decides where "127.evil.example" goes.
bool is_loopback(std::string_view host)
{
  if (host == "localhost") {
    return true;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    const std::string inner(host.substr(1, host.size() - 2));
    in6_addr a6{};
    return ::inet_pton(AF_INET6, inner.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  in_addr a4{};
  return ::inet_pton(AF_INET, std::string(host).c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

std::string lower(std::string_view s)
{
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool is_token(std::string_view s)
{
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool fail(std::string* why, const char* text)
{
  if (why) {
    *why = text;
  }
  return false;
}

} // namespace

std::string Url::origin() const
{
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

std::optional<Url> parse_base_url(std::string_view text, std::string* why)
{
  Url url;
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    fail(why, "it must start with https://");
    return std::nullopt;
  }
  url.scheme = lower(text.substr(0, sep));
  std::string_view rest = text.substr(sep + 3);
  if (url.scheme != "https" && url.scheme != "http") {
    fail(why, "only https:// (or http:// to a loopback host) is allowed");
    return std::nullopt;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    fail(why, "it may not have a query or fragment");
    return std::nullopt;
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url.path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!url.path.empty() && url.path.back() == '/') {
    url.path.pop_back();
  }
  if (authority.find('@') != std::string_view::npos) {
    fail(why, "it may not carry user info; the secret is the credential");
    return std::nullopt;
  }
  std::string_view host = authority;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      fail(why, "bad IPv6 host");
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        fail(why, "bad host");
        return std::nullopt;
      }
      url.port = std::string(after.substr(1));
    }
  } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    url.port = std::string(authority.substr(colon + 1));
  }
  url.host = lower(host);
  const bool host_ok = !url.host.empty() && std::all_of(url.host.begin(), url.host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
  });
  if (!host_ok) {
    fail(why, "bad host");
    return std::nullopt;
  }
  if (!url.port.empty()) {
    const bool digits = url.port.size() <= 5 && std::all_of(url.port.begin(), url.port.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
    if (!digits || std::stoi(url.port) < 1 || std::stoi(url.port) > 65535) {
      fail(why, "bad port");
      return std::nullopt;
    }
  }
  if (url.scheme == "http" && !is_loopback(url.host)) {
    fail(why, "http:// is only allowed to a loopback host; the credential would cross the network in the clear");
    return std::nullopt;
  }
  if (has_dot_segments(url.path) || url.path.find_first_of(" \t\r\n") != std::string::npos) {
    fail(why, "bad path");
    return std::nullopt;
  }
  return url;
}

std::optional<Injection> parse_injection(std::string_view text)
{
  if (text == "bearer") {
    return Injection{Injection::Kind::bearer, {}};
  }
  if (text == "basic") {
    return Injection{Injection::Kind::basic, {}};
  }
  if (text == "body") {
    return Injection{Injection::Kind::body, {}};
  }
  for (const auto& [prefix, kind] : {std::pair{"header:", Injection::Kind::header}, {"query:", Injection::Kind::query}}) {
    const std::string_view p(prefix);
    if (text.starts_with(p) && is_token(text.substr(p.size()))) {
      return Injection{kind, std::string(text.substr(p.size()))};
    }
  }
  return std::nullopt;
}

store::ProxySpec make_spec(const std::string& base_url, const std::vector<std::string>& methods,
                           const std::vector<std::string>& paths, const std::string& inject)
{
  const std::string fix = "secrets add NAME --proxy-only --base-url https://api.example.com/v1";
  std::string why;
  const auto url = parse_base_url(base_url, &why);
  if (!url) {
    throw Error(Errc::invalid_params, "invalid base_url \"" + base_url + "\": " + why, fix);
  }
  store::ProxySpec spec;
  spec.base_url = url->origin() + url->path;
  for (const auto& m : methods) {
    std::string upper = m;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    if (!is_token(upper)) {
      throw Error(Errc::invalid_params, "invalid method \"" + m + "\" in allow_methods", "--allow-method GET,POST");
    }
    if (std::find(spec.allow_methods.begin(), spec.allow_methods.end(), upper) == spec.allow_methods.end()) {
      spec.allow_methods.push_back(upper);
    }
  }
  for (const auto& p : paths) {
    if (!p.starts_with('/') || has_dot_segments(p) || p.find_first_of("?# \t\r\n") != std::string::npos) {
      throw Error(Errc::invalid_params, "invalid path prefix \"" + p + "\" in allow_paths: it must start with /",
                  "--allow-path /v1/chat");
    }
    std::string trimmed = p;
    while (trimmed.size() > 1 && trimmed.back() == '/') {
      trimmed.pop_back();
    }
    spec.allow_paths.push_back(trimmed);
  }
  if (spec.allow_paths.empty()) {
    spec.allow_paths.push_back(url->path.empty() ? "/" : url->path);
  }
  spec.inject = inject.empty() ? "bearer" : inject;
  if (!parse_injection(spec.inject)) {
    throw Error(Errc::invalid_params, "invalid inject \"" + inject + "\": use bearer, basic, header:NAME, query:NAME or body",
                "--inject header:x-api-key");
  }
  return spec;
}

bool method_allowed(const store::ProxySpec& spec, std::string_view method)
{
  return spec.allow_methods.empty()
         || std::find(spec.allow_methods.begin(), spec.allow_methods.end(), method) != spec.allow_methods.end();
}

bool path_allowed(const store::ProxySpec& spec, std::string_view path)
{
  for (const auto& prefix : spec.allow_paths) {
    if (prefix == "/" || path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/')) {
      return true;
    }
  }
  return false;
}

bool has_dot_segments(std::string_view path)
{
  const std::string l = lower(path);
  if (l.find("%2e") != std::string::npos || l.find("%2f") != std::string::npos || l.find("%5c") != std::string::npos
      || l.find('\\') != std::string::npos) {
    return true;
  }
  size_t start = 0;
  while (start <= l.size()) {
    const auto end = std::min(l.find('/', start), l.size());
    const auto seg = std::string_view(l).substr(start, end - start);
    if (seg == "." || seg == "..") {
      return true;
    }
    start = end + 1;
  }
  return false;
}

std::optional<Route> split_target(std::string_view target)
{
  if (!target.starts_with('/')) {
    return std::nullopt;
  }
  Route r;
  const auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos) {
    r.query = std::string(target.substr(q + 1));
  }
  path.remove_prefix(1);
  const auto slash = path.find('/');
  r.name = std::string(path.substr(0, slash));
  if (slash != std::string_view::npos) {
    r.rest = std::string(path.substr(slash));
  }
  if (!store::is_valid_name(r.name)) {
    return std::nullopt;
  }
  return r;
}

} // namespace proxy
