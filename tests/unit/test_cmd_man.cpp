#include "cmd/cli_model.hpp"
#include "cmd/man.hpp"

#include <doctest/doctest.h>

#include <sstream>

namespace {

// A small tree shaped like the real one: a plain command, an alias, a nested
// group and a hidden command.
struct Tree
{
  CLI::App app{"test"};
  std::string name, ttl, hook_name;
  bool all = false;

  Tree()
  {
    app.set_version_flag("--version", "1");
    auto* lease = app.add_subcommand("lease", "take a lease");
    lease->add_option("name", name, "secret name")->required();
    lease->add_option("--ttl", ttl, "lease duration, e.g. 30m");
    auto* remove = app.add_subcommand("remove", "delete a secret");
    remove->alias("delete");
    remove->add_flag("--all", all, "every one");
    auto* hook = app.add_subcommand("hook", "hooks");
    hook->add_subcommand("allow", "allow a hook")->add_option("name", hook_name, "secret name");
    app.add_subcommand("man", "the man page")->group("");
  }
};

} // namespace

TEST_CASE("cmd man: roff_text escapes what roff would read as markup")
{
  CHECK(cmd::roff_text("plain text") == "plain text");
  CHECK(cmd::roff_text("--ttl 30m") == "\\-\\-ttl 30m");
  CHECK(cmd::roff_text("a\\b") == "a\\eb");          // a backslash is an escape in roff
  CHECK(cmd::roff_text(".env files") == "\\&.env files"); // a leading . would be a request
  CHECK(cmd::roff_text("'quoted'") == "\\&'quoted'");     // so would a leading '
  CHECK(cmd::roff_text("it's .env") == "it's .env");     // only at the start of the line
  CHECK(cmd::roff_text("two\n.lines") == "two .lines");  // one text line: no request after a newline
  CHECK(cmd::roff_text("") == "");
}

TEST_CASE("cmd man: the leaves of the tree, with usage, arguments and options; hidden ones left out")
{
  Tree t;
  const auto leaves = cmd::leaf_commands(t.app);
  REQUIRE(leaves.size() == 3);
  CHECK(leaves[0].path == "secrets lease");
  CHECK(leaves[0].usage == "secrets lease NAME [--ttl TTL]");
  REQUIRE(leaves[0].arguments.size() == 1);
  CHECK(leaves[0].arguments[0].placeholder == "NAME");
  REQUIRE(leaves[0].options.size() == 1); // --help is left out
  CHECK(leaves[0].options[0].names == std::vector<std::string>{"--ttl"});
  CHECK(leaves[0].options[0].placeholder == "TTL");
  CHECK(leaves[1].aliases == std::vector<std::string>{"delete"});
  CHECK(leaves[2].path == "secrets hook allow");
  CHECK(leaves[2].usage == "secrets hook allow [NAME]");
}

TEST_CASE("cmd man: the page lists every command and option, escaped, with no date")
{
  Tree t;
  const std::string page = cmd::man_page(t.app);
  CHECK(page.find(".TH SECRETS 1 \"\" ") != std::string::npos); // the date field is empty
  CHECK(page.find(".SS \"lease\"\n\\fBsecrets lease\\fR NAME [\\-\\-ttl TTL]\n") != std::string::npos);
  CHECK(page.find(".SS \"hook allow\"\n") != std::string::npos);
  CHECK(page.find("\\fB\\-\\-ttl\\fR \\fITTL\\fR\nlease duration, e.g. 30m\n") != std::string::npos);
  CHECK(page.find("Also: delete.") != std::string::npos);
  CHECK(page.find("\\fB\\-h\\fR, \\fB\\-\\-help\\fR") != std::string::npos); // short names first
  CHECK(page.find("\\fB\\-\\-version\\fR") != std::string::npos);
  CHECK(page.find("man page") == std::string::npos); // the hidden command
  CHECK(page.find("\"man\"") == std::string::npos);
  // No unescaped minus and no line that roff would take for an unknown request.
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(".\\\"")) {
      continue; // the comment
    }
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '-') {
        CHECK_MESSAGE((i > 0 && line[i - 1] == '\\'), line);
      }
    }
  }
  CHECK(cmd::man_page(t.app) == page); // reproducible
}
