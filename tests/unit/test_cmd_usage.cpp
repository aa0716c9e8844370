#include "cmd/usage.hpp"

#include <doctest/doctest.h>

TEST_CASE("cmd usage: edit distance counts a swap of neighbours as one edit")
{
  CHECK(cmd::edit_distance("", "") == 0);
  CHECK(cmd::edit_distance("lease", "lease") == 0);
  CHECK(cmd::edit_distance("leas", "lease") == 1);
  CHECK(cmd::edit_distance("--tll", "--ttl") == 1); // a swap
  CHECK(cmd::edit_distance("rvoke", "revoke") == 1);
  CHECK(cmd::edit_distance("abc", "") == 3);
  CHECK(cmd::edit_distance("kitten", "sitting") == 3);
}

TEST_CASE("cmd usage: closest suggests a near word or a longer one it starts")
{
  const std::vector<std::string> commands{"lease", "leases", "list", "revoke", "renew", "rotate"};
  CHECK(cmd::closest("leas", commands) == "lease");
  CHECK(cmd::closest("revok", commands) == "revoke");
  CHECK(cmd::closest("rot", commands) == "rotate"); // a prefix
  CHECK(cmd::closest("xyzzy", commands).empty());
  // Two letters are too few to guess from: "ls" is two edits from "list" and from nothing closer.
  CHECK(cmd::closest("zz", commands).empty());
}

TEST_CASE("cmd usage: shell_word quotes only what a shell would split or expand")
{
  CHECK(cmd::shell_word("api_key") == "api_key");
  CHECK(cmd::shell_word("--ttl=5m") == "--ttl=5m");
  CHECK(cmd::shell_word("bad name") == "'bad name'");
  CHECK(cmd::shell_word("$(id)") == "'$(id)'");
  CHECK(cmd::shell_word("it's") == "'it'\\''s'");
  CHECK(cmd::shell_word("") == "''");
}
