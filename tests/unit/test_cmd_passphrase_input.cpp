// The Assuan pieces of cmd/passphrase_input: reply lines and %XX decoding.

#include "cmd/passphrase_input.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

using cmd::assuan::classify;
using cmd::assuan::LineKind;
using store::age::SecretBuffer;

TEST_CASE("assuan: reply lines are classified by their prefix")
{
  CHECK(classify("OK").kind == LineKind::ok);
  CHECK(classify("OK Pleased to meet you").kind == LineKind::ok);
  CHECK(classify("OK Pleased to meet you").rest == "Pleased to meet you");
  CHECK(classify("ERR 83886179 Operation cancelled <Pinentry>").kind == LineKind::err);
  CHECK(classify("ERR 83886179 Operation cancelled <Pinentry>").rest == "83886179 Operation cancelled <Pinentry>");
  CHECK(classify("D s3cret").kind == LineKind::data);
  CHECK(classify("D s3cret").rest == "s3cret");
  CHECK(classify("S PIN_REPEATED").kind == LineKind::status);
  CHECK(classify("S PIN_REPEATED").rest == "PIN_REPEATED");
  CHECK(classify("# a comment").kind == LineKind::comment);
  // Prefixes must be whole words: "OKAY" is not OK, "Data" is not D.
  CHECK(classify("OKAY").kind == LineKind::other);
  CHECK(classify("Data").kind == LineKind::other);
  CHECK(classify("ERRx").kind == LineKind::other);
  CHECK(classify("").kind == LineKind::other);
}

TEST_CASE("assuan: %XX escapes decode, across several D lines")
{
  SecretBuffer out(64);
  size_t at = 0;
  cmd::assuan::percent_decode_into("a%25b%0Ac", out, at);
  cmd::assuan::percent_decode_into("%0d%41 z", out, at);
  out.shrink(at);
  CHECK(out.view() == std::string_view("a%b\nc\rA z"));
}

TEST_CASE("assuan: a malformed escape or an overflow is refused")
{
  SecretBuffer out(4);
  size_t at = 0;
  CHECK_THROWS_AS(cmd::assuan::percent_decode_into("%4", out, at), util::Error);
  at = 0;
  CHECK_THROWS_AS(cmd::assuan::percent_decode_into("%zz", out, at), util::Error);
  at = 0;
  CHECK_THROWS_AS(cmd::assuan::percent_decode_into("%", out, at), util::Error);
  at = 0;
  CHECK_THROWS_AS(cmd::assuan::percent_decode_into("12345", out, at), util::Error);
  at = 0;
  cmd::assuan::percent_decode_into("1234", out, at);
  CHECK(at == 4);
}

TEST_CASE("assuan: arguments escape %, CR and LF only")
{
  CHECK(cmd::assuan::percent_encode("100% sure\r\nok") == "100%25 sure%0D%0Aok");
  CHECK(cmd::assuan::percent_encode("plain text") == "plain text");
}
