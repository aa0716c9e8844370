#include "proxy/rewrite.hpp"
#include "util/encoding.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace proxy;

namespace {

const std::string k_a = "as_0123456789abcdef0123456789abcdef";
const std::string k_b = "as_fedcba9876543210fedcba9876543210";

// Feeds `text` to a Replacer in pieces of `piece` bytes.
std::string stream_replace(const std::string& text, const std::string& needle, const std::string& with, size_t piece)
{
  Replacer r{needle, with};
  std::string out;
  for (size_t i = 0; i < text.size(); i += piece) {
    r.feed(std::string_view(text).substr(i, piece), out);
  }
  r.finish(out);
  return out;
}

} // namespace

TEST_CASE("proxy: placeholders are found as whole tokens only")
{
  CHECK(find_placeholders("Bearer " + k_a) == std::vector<std::string>{k_a});
  CHECK(find_placeholders(k_a + "," + k_b + " " + k_a) == std::vector<std::string>{k_a, k_b});
  CHECK(find_placeholders("key=" + k_a + "&x=1") == std::vector<std::string>{k_a});
  CHECK(find_placeholders("x" + k_a).empty());                     // glued to a word
  CHECK(find_placeholders(k_a + "0").empty());                     // 33 hex digits
  CHECK(find_placeholders(k_a.substr(0, 34)).empty());             // 31 hex digits
  CHECK(find_placeholders("as_0123456789ABCDEF0123456789abcdef").empty()); // upper case is not ours
  CHECK(find_placeholders("as_as_as_").empty());
}

TEST_CASE("proxy: hop-by-hop and framing headers are never forwarded")
{
  for (const char* name : {"Connection", "keep-alive", "Transfer-Encoding", "TE", "Upgrade", "Proxy-Authorization",
                           "content-length", "Expect", "Trailer", "Proxy-Connection"}) {
    CAPTURE(name);
    CHECK(is_hop_by_hop(name));
  }
  for (const char* name : {"Authorization", "Content-Type", "x-api-key", "Host2"}) {
    CAPTURE(name);
    CHECK_FALSE(is_hop_by_hop(name));
  }
}

TEST_CASE("proxy: query rewriting")
{
  CHECK(util::percent_encode("a b&c=d/é~") == "a%20b%26c%3Dd%2F%C3%A9~");
  CHECK(drop_query_params_containing("a=1&key=" + k_a + "&b=2", "as_") == "a=1&b=2");
  CHECK(drop_query_params_containing("key=" + k_a, "as_").empty());
  CHECK(drop_query_params_containing("", "as_").empty());
  CHECK(drop_query_param("key=1&keys=2&key", "key") == "keys=2");
  CHECK(drop_query_param("a=1&&b=2", "c") == "a=1&b=2");
}

TEST_CASE("proxy: Replacer replaces across any split, holding back only a possible match")
{
  const std::string secret = "sk-abcabcabd";
  const std::string text = "x sk-abcabcabd y sk-abcabcab sk-abcabcabdsk-abcabcabd z sk-abc";
  const std::string want = "x P y sk-abcabcab PP z sk-abc";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    CAPTURE(piece);
    CHECK(stream_replace(text, secret, "P", piece) == want);
  }
  CHECK(replace_all("aaaa", "aa", "b") == "bb");
  CHECK(replace_all("aaa", "aa", "b") == "ba");
  CHECK(replace_all("no match", "zz", "b") == "no match");

  // Nothing is held back unless it may start the needle: an SSE event is passed on whole.
  Replacer r{secret, "P"};
  std::string out;
  r.feed("data: 1\n\n", out);
  CHECK(out == "data: 1\n\n");
  out.clear();
  r.feed("data: sk-ab", out);
  CHECK(out == "data: "); // "sk-ab" may still become the secret
  r.feed("x\n\n", out);
  CHECK(out == "data: sk-abx\n\n");
}

TEST_CASE("proxy: Replacer counts replacements and handles self-overlapping needles")
{
  Replacer r{"abab", "X"};
  std::string out;
  CHECK(r.feed("ababab", out) == 1);
  r.finish(out);
  CHECK(out == "Xab");
  CHECK(replace_all("aabaabaaab", "aabaaab", "Y") == "aabY");
}
