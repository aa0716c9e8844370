#include "cmd/dotenv.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

std::string round_trip(const std::string& value)
{
  const auto entries = cmd::parse_dotenv("X=" + cmd::quote_env_value(value) + "\n");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].key == "X");
  return entries[0].value;
}

std::string parse_error_message(const std::string& text)
{
  try {
    cmd::parse_dotenv(text);
  } catch (const util::Error& e) {
    CHECK(e.code() == util::Errc::invalid_params);
    CHECK_FALSE(e.fix().empty());
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("quote_env_value round-trips hostile values through parse_dotenv")
{
  const std::vector<std::string> values = {
    "plain",
    "with spaces  and\ttabs",
    "it's",
    "'",
    "''",
    "'\\''",
    "double \"quoted\"",
    "$HOME ${HOME} $(id) `id`",
    "back\\slash\\\\ \\n \\'",
    "multi\nline\nvalue\n",
    "\n",
    " leading and trailing ",
    "# not a comment",
    "a=b=c",
    "mixed ' \" $X \\ \n end",
    "",
  };
  for (const auto& v : values) {
    CHECK(round_trip(v) == v);
  }
}

TEST_CASE("quote_env_value uses single quotes and the '\\'' idiom")
{
  CHECK(cmd::quote_env_value("abc") == "'abc'");
  CHECK(cmd::quote_env_value("it's") == "'it'\\''s'");
  CHECK(cmd::quote_env_value("") == "''");
}

TEST_CASE("parse_dotenv handles comments, export, quotes and blank lines")
{
  const std::string text = "# a comment\n"
                           "\n"
                           "export TOKEN=abc123\n"
                           "PLAIN = some value   # trailing comment\n"
                           "HASH=abc#def\n"
                           "SINGLE='literal $HOME \\n'\n"
                           "DOUBLE=\"line1\\nline2 \\\"q\\\" \\\\ \\$HOME\"\n"
                           "EMPTY=\n"
                           "EMPTY2= # only a comment\n"
                           "  INDENTED=yes\r\n"
                           "MULTI='a\n"
                           "b'\n"
                           "AFTER=1\n";
  const auto e = cmd::parse_dotenv(text);
  REQUIRE(e.size() == 10);
  CHECK(e[0].key == "TOKEN");
  CHECK(e[0].value == "abc123");
  CHECK(e[0].line == 3);
  CHECK(e[1].key == "PLAIN");
  CHECK(e[1].value == "some value");
  CHECK(e[2].value == "abc#def");
  CHECK(e[3].value == "literal $HOME \\n");
  CHECK(e[4].value == "line1\nline2 \"q\" \\ $HOME");
  CHECK(e[5].key == "EMPTY");
  CHECK(e[5].value.empty());
  CHECK(e[6].key == "EMPTY2");
  CHECK(e[6].value.empty());
  CHECK(e[7].key == "INDENTED");
  CHECK(e[7].value == "yes");
  CHECK(e[8].key == "MULTI");
  CHECK(e[8].value == "a\nb");
  CHECK(e[8].line == 11);
  CHECK(e[9].key == "AFTER");
  CHECK(e[9].line == 13);
}

TEST_CASE("parse_dotenv keeps duplicates in file order")
{
  const auto e = cmd::parse_dotenv("A=1\nB=2\nA=3\n");
  REQUIRE(e.size() == 3);
  CHECK(e[2].key == "A");
  CHECK(e[2].value == "3");
}

TEST_CASE("parse_dotenv errors name the line")
{
  CHECK(parse_error_message("A=1\nnot a pair\n") == "line 2: expected '=' after not");
  CHECK(parse_error_message("A=1\n\nB='open\n") == "line 3: unterminated single quote in B");
  CHECK(parse_error_message("C=\"open\n") == "line 1: unterminated double quote in C");
  CHECK(parse_error_message("A=1\nD='x' junk\n") == "line 2: unexpected text after the closing quote of D");
  CHECK(parse_error_message("=value\n") == "line 1: expected KEY=value");
}

TEST_CASE("parse_dotenv error messages never carry the value")
{
  const std::string message = parse_error_message("K='supersecret-value\n");
  CHECK(message.find("supersecret") == std::string::npos);
}

TEST_CASE("is_valid_env_name")
{
  CHECK(cmd::is_valid_env_name("GITHUB_TOKEN"));
  CHECK(cmd::is_valid_env_name("_x1"));
  CHECK_FALSE(cmd::is_valid_env_name(""));
  CHECK_FALSE(cmd::is_valid_env_name("1ABC"));
  CHECK_FALSE(cmd::is_valid_env_name("A-B"));
  CHECK_FALSE(cmd::is_valid_env_name("A B"));
}
