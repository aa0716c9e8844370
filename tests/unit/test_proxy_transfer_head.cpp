// proxy/transfer_head: the head the agent gets for an upstream response.
#include "proxy/transfer_head.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace proxy;

namespace {

const std::string k_value = "sk-live-7f3a9c";
const std::string k_placeholder = "as_0123456789abcdef0123456789abcdef";

bool has(const ResponseHead& h, const std::string& text)
{
  return h.bytes.find(text) != std::string::npos;
}

} // namespace

TEST_CASE("response_head: HTTP/1.1 is chunked, hop-by-hop and Connection-named headers go, values are scrubbed")
{
  const auto needles = scrub_needles(k_value, k_placeholder);
  const HeaderList headers = {{"Content-Type", "application/json"},
                              {"Connection", "keep-alive, X-Private"},
                              {"X-Private", "internal"},
                              {"Keep-Alive", "timeout=5"},
                              {"Content-Length", "42"},
                              {"X-Echo", "token " + k_value}};
  const ResponseHead h = response_head(headers, 200, RequestShape{11, false, true}, needles);
  REQUIRE_FALSE(h.refused);
  CHECK(h.serialized);
  CHECK(h.bytes.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(h.bytes.ends_with("\r\n\r\n"));
  CHECK(h.chunked);
  CHECK(h.keep_alive);
  CHECK_FALSE(h.no_body);
  CHECK_FALSE(h.decode);
  CHECK(has(h, "Content-Type: application/json\r\n"));
  CHECK(has(h, "Transfer-Encoding: chunked\r\n"));
  CHECK_FALSE(has(h, "X-Private"));
  CHECK_FALSE(has(h, "Keep-Alive"));
  CHECK_FALSE(has(h, "Content-Length")); // chunked instead
  CHECK_FALSE(has(h, k_value));
  CHECK(has(h, "X-Echo: token " + k_placeholder + "\r\n"));
}

TEST_CASE("response_head: gzip is decoded here (Content-Encoding goes), an unknown coding is refused")
{
  const auto needles = scrub_needles(k_value, k_placeholder);
  const ResponseHead gzip =
    response_head({{"Content-Encoding", "gzip"}, {"Content-Type", "text/plain"}}, 200, RequestShape{}, needles);
  REQUIRE_FALSE(gzip.refused);
  REQUIRE(gzip.decode);
  CHECK(*gzip.decode == Coding::gzip);
  CHECK_FALSE(has(gzip, "Content-Encoding"));

  const ResponseHead br = response_head({{"Content-Encoding", "br"}}, 200, RequestShape{}, needles);
  REQUIRE(br.refused);
  CHECK(br.refused->status == 502);
  CHECK(br.refused->code == "upstream_encoding");
  CHECK(br.refused->message.find("Content-Encoding: br") != std::string::npos);
  CHECK(br.bytes.empty());
}

TEST_CASE("response_head: HEAD, 204 and 304 have no body; HEAD keeps its Content-Length")
{
  const auto needles = scrub_needles(k_value, k_placeholder);
  const ResponseHead head =
    response_head({{"Content-Length", "1234"}, {"Content-Encoding", "br"}}, 200, RequestShape{11, true, true}, needles);
  REQUIRE_FALSE(head.refused); // no body to scrub: its coding does not matter
  CHECK(head.no_body);
  CHECK_FALSE(head.chunked);
  CHECK(has(head, "Content-Length: 1234\r\n"));
  for (const int status : {204, 304}) {
    const ResponseHead h = response_head({}, status, RequestShape{}, needles);
    CHECK(h.no_body);
    CHECK_FALSE(h.chunked);
  }
}

TEST_CASE("response_head: on HTTP/1.0 the body ends with the connection")
{
  const auto needles = scrub_needles(k_value, k_placeholder);
  const ResponseHead h = response_head({{"Content-Type", "text/plain"}}, 200, RequestShape{10, false, true}, needles);
  CHECK(h.bytes.starts_with("HTTP/1.0 200 OK\r\n"));
  CHECK_FALSE(h.chunked);
  CHECK_FALSE(h.keep_alive);
  const ResponseHead closing = response_head({}, 200, RequestShape{11, false, false}, needles);
  CHECK(closing.chunked);
  CHECK_FALSE(closing.keep_alive);
  CHECK(has(closing, "Connection: close\r\n"));
}
