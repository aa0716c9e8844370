#include "proxy/scrub.hpp"
#include "util/encoding.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>

using namespace proxy;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The meaning of leftmost-longest, by brute force: at each position the
// longest needle that matches there is replaced, and the scan goes on after it.
std::string reference(const std::string& text, const Pairs& pairs)
{
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const std::pair<std::string, std::string>* best = nullptr;
    for (const auto& p : pairs) {
      if (!p.first.empty() && text.compare(pos, p.first.size(), p.first) == 0
          && (!best || p.first.size() > best->first.size())) {
        best = &p;
      }
    }
    if (best) {
      out += best->second;
      pos += best->first.size();
    } else {
      out += text[pos++];
    }
  }
  return out;
}

std::string stream(const std::string& text, const Pairs& pairs, size_t piece)
{
  MultiReplacer r{pairs};
  std::string out;
  for (size_t i = 0; i < text.size(); i += piece) {
    r.feed(std::string_view(text).substr(i, piece), out);
  }
  r.finish(out);
  return out;
}

} // namespace

TEST_CASE("proxy: MultiReplacer is leftmost-longest at every split")
{
  const Pairs pairs = {{"abcd", "<1>"}, {"bc", "<2>"}, {"abcdef", "<3>"}, {"cde", "<4>"}, {"aab", "<5>"}, {"b", "<6>"}};
  for (const std::string text : {"abcdef", "abcdeX", "aabcd", "xxabcxx", "abcabcdabcdefg", "aaaab", "bbb", "",
                                 "cdcdecde", "abcdabcdef"}) {
    for (size_t piece = 1; piece <= text.size() + 1; ++piece) {
      CAPTURE(text);
      CAPTURE(piece);
      CHECK(stream(text, pairs, piece) == reference(text, pairs));
    }
  }
}

TEST_CASE("proxy: MultiReplacer matches brute force on random text")
{
  std::mt19937 rng(7);
  auto random_text = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      s += static_cast<char>('a' + rng() % 3);
    }
    return s;
  };
  for (int round = 0; round < 300; ++round) {
    Pairs pairs;
    const size_t count = 1 + rng() % 5;
    for (size_t i = 0; i < count; ++i) {
      pairs.emplace_back(random_text(1 + rng() % 5), "<" + std::to_string(i) + ">");
    }
    const std::string text = random_text(rng() % 60);
    const std::string want = reference(text, pairs);
    for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, text.size() + 1}) {
      CAPTURE(text);
      CAPTURE(piece);
      REQUIRE(stream(text, pairs, piece) == want);
    }
  }
}

TEST_CASE("proxy: MultiReplacer holds back only what could start a match")
{
  MultiReplacer r{Pairs{{"secret-value", "as_x"}, {"c2VjcmV0LXZhbHVl", "as_x"}}};
  std::string out;
  r.feed("data: 1\n\n", out);
  CHECK(out == "data: 1\n\n"); // no byte of it starts a needle
  out.clear();
  r.feed("data: sec", out);
  CHECK(out == "data: "); // "sec" could be the start of the value
  r.feed("ret-value", out);
  CHECK(out == "data: as_x"); // a needle that cannot grow is final at once
  r.feed("\n\ndata: c2Vj", out);
  CHECK(out == "data: as_x\n\ndata: ");
  r.feed("Zz", out);
  CHECK(out == "data: as_x\n\ndata: c2VjZz"); // not a match after all: released
  r.finish(out);
  CHECK(out == "data: as_x\n\ndata: c2VjZz");
}

TEST_CASE("proxy: MultiReplacer counts and ignores empty needles")
{
  MultiReplacer r{Pairs{{"", "x"}, {"ab", "X"}, {"ab", "Y"}}};
  std::string out;
  CHECK(r.feed("abab", out) + r.finish(out) == 2);
  CHECK(out == "XX");
}

TEST_CASE("proxy: scrubbing covers every encoded form, across every split")
{
  const std::string value = "sk-live/REAL+value=7f3a\"9c";
  const std::string ph = "as_0123456789abcdef0123456789abcdef";
  std::vector<std::string> texts;
  texts.push_back("{\"key\":\"" + value + "\"}");
  texts.push_back("key=" + util::percent_encode(value) + "&x=1");
  texts.push_back("key=" + util::percent_encode(value, false));
  texts.push_back("Authorization: Basic " + util::base64_encode(value, false, true));
  for (const std::string prefix : {"", "u", "us", "user:"}) {
    texts.push_back("blob " + util::base64_encode(prefix + value + ":x", false, true) + " end");
    texts.push_back("blob " + util::base64_encode(prefix + value, true, false) + " end");
  }
  std::string escaped;
  for (const unsigned char c : value) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
    escaped += buf;
  }
  texts.push_back("{\"k\":\"" + escaped + "\"}");
  texts.push_back("{\"k\":\"sk-live\\/REAL+value=7f3a\\\"9c\"}");
  texts.push_back("hex " + util::hex_encode(value, false) + " " + util::hex_encode(value, true));
  for (const auto& text : texts) {
    for (size_t piece : {size_t{1}, size_t{5}, size_t{13}, text.size()}) {
      CAPTURE(text);
      CAPTURE(piece);
      MultiReplacer r{scrub_needles(value, ph)};
      std::string out;
      size_t replaced = 0;
      for (size_t i = 0; i < text.size(); i += piece) {
        replaced += r.feed(std::string_view(text).substr(i, piece), out);
      }
      replaced += r.finish(out);
      CHECK(replaced >= 1);
      CHECK(out.find(ph) != std::string::npos);
      for (const auto& form : util::encoded_forms(value)) {
        CHECK(out.find(form.text) == std::string::npos);
      }
    }
  }
  const auto needles = scrub_needles(value, ph);
  CHECK(scrub("a " + value + " b", needles) == "a " + ph + " b");
  CHECK(scrub("nothing here", needles) == "nothing here");
  CHECK(scrub(value + value, needles) == ph + ph); // one Needles, many streams
}
