#include "util/encoding.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace util;

namespace {

bool has_form(const std::vector<EncodedForm>& forms, std::string_view encoding, std::string_view text)
{
  return std::any_of(forms.begin(), forms.end(),
                     [&](const EncodedForm& f) { return f.encoding == encoding && f.text == text; });
}

} // namespace

TEST_CASE("util: base64, hex and percent encoders")
{
  CHECK(base64_encode("", false, true).empty());
  CHECK(base64_encode("f", false, true) == "Zg==");
  CHECK(base64_encode("fo", false, true) == "Zm8=");
  CHECK(base64_encode("foo", false, true) == "Zm9v");
  CHECK(base64_encode("foob", false, false) == "Zm9vYg");
  CHECK(base64_encode("\xfb\xff", false, true) == "+/8=");
  CHECK(base64_encode("\xfb\xff", true, false) == "-_8");
  CHECK(hex_encode("\x01\xab", false) == "01ab");
  CHECK(hex_encode("\x01\xab", true) == "01AB");
  CHECK(percent_encode("a b&c=d/é~") == "a%20b%26c%3Dd%2F%C3%A9~");
  CHECK(percent_encode("é", false) == "%c3%a9");
}

TEST_CASE("util: encoded forms of a value")
{
  const std::string v = "sk-live/abc+def ghi";
  const auto forms = encoded_forms(v);
  CHECK(has_form(forms, "raw", v));
  CHECK(has_form(forms, "percent", "sk-live%2Fabc%2Bdef%20ghi"));
  CHECK(has_form(forms, "percent", "sk-live%2Fabc%2Bdef+ghi"));
  CHECK(has_form(forms, "hex", hex_encode(v, false)));
  CHECK(has_form(forms, "hex", hex_encode(v, true)));
  CHECK(has_form(forms, "json_escaped", "sk-live\\/abc+def ghi"));
  CHECK(has_form(forms, "json_escaped", "\\u0073\\u006b\\u002d\\u006c\\u0069\\u0076\\u0065\\u002f\\u0061\\u0062\\u0063"
                                        "\\u002b\\u0064\\u0065\\u0066\\u0020\\u0067\\u0068\\u0069"));
  // No two forms are the same text.
  for (size_t i = 0; i < forms.size(); ++i) {
    for (size_t j = i + 1; j < forms.size(); ++j) {
      CHECK(forms[i].text != forms[j].text);
    }
  }
  // Short values: raw only.
  const auto short_forms = encoded_forms("abc");
  REQUIRE(short_forms.size() == 1);
  CHECK(short_forms[0].text == "abc");
}

TEST_CASE("util: a base64 form is found wherever the value sits in a longer encoded stream")
{
  const std::string v = "ghp_0123456789abcdefXYZ";
  const auto forms = encoded_forms(v);
  for (const bool url : {false, true}) {
    for (const std::string prefix : {"", "x", "xy", "xyz", "{\"token\":\""}) {
      for (const std::string suffix : {"", "\"}", "!"}) {
        const std::string encoded = base64_encode(prefix + v + suffix, url, true);
        const bool found = std::any_of(forms.begin(), forms.end(), [&](const EncodedForm& f) {
          // A base64url form equal to the standard one is listed once, as base64.
          return std::string_view(f.encoding).starts_with("base64") && encoded.find(f.text) != std::string::npos;
        });
        CHECK_MESSAGE(found, "prefix '" << prefix << "' suffix '" << suffix << "' url " << url);
      }
    }
  }
  // HTTP Basic: the whole value, padded.
  CHECK(redact_forms("Authorization: Basic " + base64_encode(v, false, true), {v}, "[x]")
          .find("Basic [x]") != std::string::npos);
}

TEST_CASE("util: redact_forms removes every form of every value")
{
  const std::string old_value = "old-secret-1234";
  const std::string new_value = "new/secret 5678";
  const std::string text = "error: " + old_value + " rejected; tried " + percent_encode(new_value) + ", "
                           + base64_encode("user:" + new_value, false, true) + ", " + hex_encode(old_value, true)
                           + ", \"" + "new\\/secret 5678" + "\"";
  const std::string out = redact_forms(text, {old_value, new_value}, "[redacted]");
  CHECK(out.find(old_value) == std::string::npos);
  CHECK(out.find("secret") == std::string::npos);
  CHECK(out.find(hex_encode(old_value, true)) == std::string::npos);
  CHECK(out.starts_with("error: [redacted] rejected; tried [redacted], "));
  // A short value is still removed raw; an empty one changes nothing.
  CHECK(redact_forms("pin 4321 ok", {"4321", ""}, "*") == "pin * ok");
}
