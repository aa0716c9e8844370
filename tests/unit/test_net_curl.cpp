#include "net/curl.hpp"

#include <doctest/doctest.h>

#include <string>

// ctest runs each test case in its own process, and nothing else in the unit
// tests loads libcurl, so this case sees the process before its first load.
TEST_CASE("net::curl loads libcurl on first use only")
{
  CHECK_FALSE(net::curl_loaded());
  const net::Curl& c = net::curl();
  CHECK(net::curl_loaded());
  CHECK(&net::curl() == &c); // loaded once, the same table afterwards

  CURL* handle = c.easy_init();
  REQUIRE(handle != nullptr);
  CHECK(c.easy_setopt(handle, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK);
  CHECK(c.easy_setopt(handle, CURLOPT_TIMEOUT_MS, 1000L) == CURLE_OK);
  // Nothing listens on port 1: a transport error, not a crash or a hang.
  const CURLcode rc = c.easy_perform(handle);
  CHECK(rc != CURLE_OK);
  CHECK(std::string(c.easy_strerror(rc)).size() > 0);
  c.easy_cleanup(handle);

  char* escaped = c.easy_escape(nullptr, "a b&c", 0);
  REQUIRE(escaped != nullptr);
  CHECK(std::string(escaped) == "a%20b%26c");
  c.free(escaped);
}
