#include "cmd/mask.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using cmd::MaskFilter;

namespace {

const std::string k_marker(MaskFilter::k_concealed);

// Feeds `chunks` one by one, then finishes; returns everything written.
std::string run(const std::vector<std::string>& values, const std::vector<std::string>& chunks)
{
  MaskFilter f(values);
  std::string out;
  for (const auto& c : chunks) {
    out += f.feed(c);
  }
  out += f.finish();
  return out;
}

} // namespace

TEST_CASE("mask: a value in one chunk is concealed")
{
  CHECK(run({"s3cret"}, {"token=s3cret\n"}) == "token=" + k_marker + "\n");
  CHECK(run({"s3cret"}, {"s3cret"}) == k_marker);
  CHECK(run({"s3cret"}, {"a s3cret and s3cret again"}) == "a " + k_marker + " and " + k_marker + " again");
}

TEST_CASE("mask: a value split across two chunks at every offset")
{
  const std::string value = "hunter2-password";
  const std::string text = "before " + value + " after";
  const std::string expected = "before " + k_marker + " after";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    CAPTURE(cut);
    CHECK(run({value}, {text.substr(0, cut), text.substr(cut)}) == expected);
  }
}

TEST_CASE("mask: a value split across three chunks at every pair of offsets")
{
  const std::string value = "abcdefgh";
  const std::string text = "x" + value + "y";
  const std::string expected = "x" + k_marker + "y";
  for (size_t a = 0; a <= text.size(); ++a) {
    for (size_t b = a; b <= text.size(); ++b) {
      CAPTURE(a);
      CAPTURE(b);
      CHECK(run({value}, {text.substr(0, a), text.substr(a, b - a), text.substr(b)}) == expected);
    }
  }
}

TEST_CASE("mask: byte by byte")
{
  const std::string text = "ab s3cret cd";
  std::vector<std::string> chunks;
  for (char c : text) {
    chunks.emplace_back(1, c);
  }
  CHECK(run({"s3cret"}, chunks) == "ab " + k_marker + " cd");
}

TEST_CASE("mask: adjacent and overlapping values")
{
  CHECK(run({"alpha", "bravo"}, {"alphabravo"}) == k_marker + k_marker);
  // Overlap: the longest match at the earliest position wins.
  CHECK(run({"abc", "abcdef"}, {"xabcdefx"}) == "x" + k_marker + "x");
  CHECK(run({"abc", "abcdef"}, {"xabcdx"}) == "x" + k_marker + "dx");
  // A shorter value must not be masked early, leaking the rest of a longer one.
  CHECK(run({"abc", "abcdef"}, {"xabc", "def"}) == "x" + k_marker);
  CHECK(run({"abc", "abcdef"}, {"xabc", "dex"}) == "x" + k_marker + "dex");
  // Values that overlap in the text: the first one starting wins.
  CHECK(run({"abcd", "cdef"}, {"abcdef"}) == k_marker + "ef");
  // Repeated-prefix values.
  CHECK(run({"aab"}, {"aaab"}) == "a" + k_marker);
  CHECK(run({"aab"}, {"a", "a", "a", "b"}) == "a" + k_marker);
}

TEST_CASE("mask: a value at the end of the stream")
{
  CHECK(run({"s3cret"}, {"tail: s3c", "ret"}) == "tail: " + k_marker);
  MaskFilter f({"s3cret"});
  std::string out = f.feed("tail: s3c");
  CHECK(out == "tail: ");
  CHECK(f.pending() == 3);
  out += f.feed("ret");
  CHECK(f.pending() == 0);
  out += f.finish();
  CHECK(out == "tail: " + k_marker);
}

TEST_CASE("mask: a prefix that never completes is flushed, not lost")
{
  MaskFilter f({"s3cret"});
  CHECK(f.feed("a s3c") == "a ");
  CHECK(f.feed("x") == "s3cx"); // can no longer match: flushed at once
  CHECK(f.pending() == 0);
  CHECK(f.feed("s3cre") == "");
  CHECK(f.finish() == "s3cre"); // EOF proves it cannot match
}

TEST_CASE("mask: no false holdback of bytes that cannot start a value")
{
  MaskFilter f({"s3cret"});
  CHECK(f.feed("hello world") == "hello world");
  CHECK(f.pending() == 0);
  CHECK(f.feed("ends with s") == "ends with ");
  CHECK(f.pending() == 1);
}

TEST_CASE("mask: values shorter than 3 bytes are not masked")
{
  CHECK(run({"ab"}, {"abc ab"}) == "abc ab");
  CHECK(run({"ab", "xyz"}, {"ab xyz"}) == "ab " + k_marker);
  CHECK(run({}, {"anything"}) == "anything");
}

TEST_CASE("mask: binary data passes byte-exact")
{
  std::string binary;
  for (int i = 0; i < 256; ++i) {
    binary.push_back(static_cast<char>(i));
  }
  binary += binary;
  const std::string value("\x00\xffsecret\x01", 9);
  CHECK(run({value}, {binary}) == binary);
  for (size_t cut = 0; cut <= binary.size(); cut += 7) {
    CHECK(run({value}, {binary.substr(0, cut), binary.substr(cut)}) == binary);
  }
  const std::string text = binary + value + binary;
  CHECK(run({value}, {text.substr(0, 300), text.substr(300, 215), text.substr(515)}) == binary + k_marker + binary);
}
