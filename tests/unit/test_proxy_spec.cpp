#include "proxy/spec.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

using namespace proxy;

TEST_CASE("proxy: base URLs")
{
  auto url = parse_base_url("https://API.example.com/v1/");
  REQUIRE(url);
  CHECK(url->scheme == "https");
  CHECK(url->host == "api.example.com");
  CHECK(url->port.empty());
  CHECK(url->path == "/v1");
  CHECK(url->origin() == "https://api.example.com");

  url = parse_base_url("http://127.0.0.1:8080");
  REQUIRE(url);
  CHECK(url->port == "8080");
  CHECK(url->path.empty());
  CHECK(parse_base_url("http://[::1]:80/x"));
  CHECK(parse_base_url("http://localhost/x"));

  std::string why;
  for (const char* bad : {"api.example.com", "ftp://example.com", "http://example.com", "http://10.0.0.1/",
                          "https://user:pw@example.com", "https://example.com/?q=1", "https://example.com/#f",
                          "https://example.com:99999", "https://example.com:x", "https:///v1",
                          "https://exa mple.com", "https://example.com/a/../b", "https://[::1/"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_base_url(bad, &why));
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("proxy: http:// base URLs must name a literal loopback address")
{
  for (const char* good : {"http://127.0.0.1:8080/v1", "http://127.255.0.9", "http://localhost:1", "http://[::1]:80",
                           "http://[0:0:0:0:0:0:0:1]/x", "https://127.evil.example"}) {
    CAPTURE(good);
    CHECK(parse_base_url(good));
  }
  std::string why;
  // A name is resolved by DNS: "127." in it says nothing about where it goes.
  for (const char* bad : {"http://127.evil.example/v1", "http://127.0.0.1.evil.example", "http://127.example",
                          "http://127.1", "http://127.0.0.1.", "http://128.0.0.1", "http://[::2]", "http://[::ffff:127.0.0.1]",
                          "http://localhost.evil.example", "http://0.0.0.0"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_base_url(bad, &why));
    CHECK(why.find("loopback") != std::string::npos);
  }
}

TEST_CASE("proxy: make_spec fills defaults and refuses what it cannot enforce")
{
  auto spec = make_spec("https://api.example.com/v1/", {}, {}, "");
  CHECK(spec.base_url == "https://api.example.com/v1");
  CHECK(spec.allow_methods.empty());
  CHECK(spec.allow_paths == std::vector<std::string>{"/v1"});
  CHECK(spec.inject == "bearer");

  spec = make_spec("https://api.example.com", {"get", "POST", "get"}, {"/a/", "/b"}, "header:x-api-key");
  CHECK(spec.allow_methods == std::vector<std::string>{"GET", "POST"});
  CHECK(spec.allow_paths == std::vector<std::string>{"/a", "/b"});
  CHECK(make_spec("https://api.example.com", {}, {}, "").allow_paths == std::vector<std::string>{"/"});

  CHECK_THROWS_AS(make_spec("http://example.com", {}, {}, ""), util::Error);
  CHECK_THROWS_AS(make_spec("https://example.com", {"GE T"}, {}, ""), util::Error);
  CHECK_THROWS_AS(make_spec("https://example.com", {}, {"v1"}, ""), util::Error);
  CHECK_THROWS_AS(make_spec("https://example.com", {}, {"/a/../b"}, ""), util::Error);
  for (const char* bad : {"cookie", "header:", "header:a b", "query:", "Bearer", "header:x\r\ny"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(make_spec("https://example.com", {}, {}, bad), util::Error);
  }
  for (const char* good : {"bearer", "basic", "body", "header:x-api-key", "query:key"}) {
    CAPTURE(good);
    CHECK(make_spec("https://example.com", {}, {}, good).inject == good);
  }
}

TEST_CASE("proxy: scope checks")
{
  const auto spec = make_spec("https://api.example.com/v1", {"GET"}, {"/v1/chat", "/v1/models"}, "");
  CHECK(method_allowed(spec, "GET"));
  CHECK_FALSE(method_allowed(spec, "POST"));
  CHECK(path_allowed(spec, "/v1/chat"));
  CHECK(path_allowed(spec, "/v1/chat/completions"));
  CHECK(path_allowed(spec, "/v1/models"));
  CHECK_FALSE(path_allowed(spec, "/v1/chatx"));
  CHECK_FALSE(path_allowed(spec, "/v1/files"));
  CHECK_FALSE(path_allowed(spec, "/v1"));
  CHECK(path_allowed(make_spec("https://a.example", {}, {}, ""), "/anything"));
  CHECK(method_allowed(make_spec("https://a.example", {}, {}, ""), "PATCH"));
}

TEST_CASE("proxy: dot segments and encoded separators")
{
  for (const char* bad : {"/a/../b", "/..", "/a/./b", "/a/%2e%2e/b", "/a/%2E./b", "/a%2fb", "/a%5Cb", "/a\\b", "/."}) {
    CAPTURE(bad);
    CHECK(has_dot_segments(bad));
  }
  for (const char* good : {"", "/", "/a/b", "/a..b", "/.well-known", "/a/...", "/v1/chat.completions"}) {
    CAPTURE(good);
    CHECK_FALSE(has_dot_segments(good));
  }
}

TEST_CASE("proxy: routes")
{
  auto r = split_target("/openai/v1/chat?stream=true");
  REQUIRE(r);
  CHECK(r->name == "openai");
  CHECK(r->rest == "/v1/chat");
  CHECK(r->query == "stream=true");
  r = split_target("/openai");
  REQUIRE(r);
  CHECK(r->rest.empty());
  CHECK(r->query.empty());
  CHECK_FALSE(split_target("http://example.com/x"));
  CHECK_FALSE(split_target("example.com:443"));
  CHECK_FALSE(split_target("*"));
  CHECK_FALSE(split_target("/"));
  CHECK_FALSE(split_target("/bad name/x"));
}
