#include "cmd/project.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

// A temp directory that is also the cwd for the test's lifetime.
class TempCwd
{
public:
  TempCwd()
  {
    char tmpl[] = "/tmp/as-project-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    m_dir = tmpl;
    m_old = fs::current_path();
    fs::current_path(m_dir);
  }
  ~TempCwd()
  {
    fs::current_path(m_old);
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  TempCwd(const TempCwd&) = delete;
  TempCwd& operator=(const TempCwd&) = delete;

  const fs::path& dir() const { return m_dir; }

  void write(const fs::path& rel, const std::string& text) const
  {
    fs::create_directories((m_dir / rel).parent_path());
    std::ofstream(m_dir / rel) << text;
  }

private:
  fs::path m_dir;
  fs::path m_old;
};

std::string load_error(const std::string& file, const std::vector<std::string>& flags = {})
{
  try {
    cmd::load_project(file, flags);
  } catch (const util::Error& e) {
    CHECK(e.code() == util::Errc::invalid_params);
    CHECK_FALSE(e.fix().empty());
    return e.what();
  }
  return "";
}

const char* k_good = R"({
  "client_id": "agent-7",
  "secrets": [
    {"name": "github-token", "env_var": "GITHUB_TOKEN", "ttl": "30m"},
    {"name": "db.password", "env_var": "DB_PASSWORD"}
  ]
}
)";

} // namespace

TEST_CASE("load_project finds .secrets.json from a nested directory upwards")
{
  TempCwd t;
  t.write(".secrets.json", k_good);
  fs::create_directories(t.dir() / "a" / "b" / "c");
  fs::current_path(t.dir() / "a" / "b" / "c");
  const auto p = cmd::load_project("", {});
  CHECK(fs::path(p.source) == t.dir() / ".secrets.json");
  CHECK(p.client_id == "agent-7");
  REQUIRE(p.secrets.size() == 2);
  CHECK(p.secrets[0].name == "github-token");
  CHECK(p.secrets[0].env_var == "GITHUB_TOKEN");
  CHECK(p.secrets[0].ttl == "30m");
  CHECK(p.secrets[1].name == "db.password");
  CHECK(p.secrets[1].ttl.empty());
}

TEST_CASE("load_project: the nearest .secrets.json wins")
{
  TempCwd t;
  t.write(".secrets.json", k_good);
  t.write("sub/.secrets.json", R"({"secrets":[{"name":"x","env_var":"X"}]})");
  fs::current_path(t.dir() / "sub");
  const auto p = cmd::load_project("", {});
  REQUIRE(p.secrets.size() == 1);
  CHECK(p.secrets[0].env_var == "X");
  CHECK(p.client_id.empty());
}

TEST_CASE("load_project: --file overrides the lookup")
{
  TempCwd t;
  t.write(".secrets.json", k_good);
  t.write("other.json", R"({"secrets":[{"name":"y","env_var":"Y"}]})");
  const auto p = cmd::load_project((t.dir() / "other.json").string(), {});
  CHECK(p.source == (t.dir() / "other.json").string());
  REQUIRE(p.secrets.size() == 1);
  CHECK(p.secrets[0].name == "y");
  CHECK(load_error((t.dir() / "missing.json").string()).find("no such file") != std::string::npos);
}

TEST_CASE("load_project: --secret flags need no file")
{
  TempCwd t; // no .secrets.json anywhere below /tmp
  const auto p = cmd::load_project("ignored.json", {"github-token", "db.password=PGPASSWORD", "api_key"});
  CHECK(p.source == "--secret flags");
  REQUIRE(p.secrets.size() == 3);
  CHECK(p.secrets[0].env_var == "GITHUB_TOKEN");
  CHECK(p.secrets[1].name == "db.password");
  CHECK(p.secrets[1].env_var == "PGPASSWORD");
  CHECK(p.secrets[2].env_var == "API_KEY");
  CHECK(load_error("", {"a=1BAD"}).find("invalid env var name \"1BAD\"") != std::string::npos);
  CHECK(load_error("", {"a-b", "A_B"}).find("env var A_B is set by more than one secret") != std::string::npos);
  CHECK(load_error("", {"=X"}).find("the secret name is empty") != std::string::npos);
}

TEST_CASE("load_project: no file found")
{
  TempCwd t;
  if (fs::exists("/tmp/.secrets.json") || fs::exists("/.secrets.json")) {
    return; // the machine has one above us: nothing to test
  }
  const auto message = load_error("");
  CHECK(message.find("no .secrets.json in") != std::string::npos);
}

TEST_CASE("load_project: schema errors name the field and the line")
{
  TempCwd t;
  auto error_for = [&](const std::string& text) {
    t.write("p.json", text);
    const std::string message = load_error((t.dir() / "p.json").string());
    const std::string prefix = (t.dir() / "p.json").string() + " ";
    REQUIRE(message.starts_with(prefix));
    return message.substr(prefix.size());
  };
  CHECK(error_for("{\n  \"secrets\": [\n    {\"name\": \"a\", \"env_var\": \"A\"},\n    {\"name\": \"b\", \"env_var\": 7}\n  ]\n}\n") ==
        "line 4: secrets[1].env_var must be a string");
  CHECK(error_for("{\n  \"secrets\": [\n    {\"name\": \"a\", \"env_var\": \"A\"},\n    {\n      \"env_var\": \"B\"\n    }\n  ]\n}\n") ==
        "line 4: secrets[1].name is required");
  CHECK(error_for("{\n  \"client_id\": 3,\n  \"secrets\": []\n}") == "line 2: client_id must be a string");
  CHECK(error_for("{\n  \"secrets\": {}\n}") == "line 2: secrets must be a non-empty array");
  CHECK(error_for("{}") == "line 1: secrets is required");
  CHECK(error_for("[1]") == "line 1: the document must be an object");
  CHECK(error_for("{\n  \"secrets\": [\n    \"a\"\n  ]\n}") == "line 3: secrets[0] must be an object");
  CHECK(error_for("{\"secrets\": [\n {\"name\": \"a\",\n  \"env_var\": \"A\",\n  \"ttl\": 30}]}") ==
        "line 4: secrets[0].ttl must be a string (a duration such as \"30m\")");
  CHECK(error_for("{\"secrets\": [\n {\"name\": \"a\", \"env_var\": \"A-B\"}]}").starts_with(
    "line 2: secrets[0].env_var \"A-B\" is not a valid env var name"));
  CHECK(error_for("{\"secrets\": [\n {\"name\": \"a\", \"env_var\": \"A\"},\n {\"name\": \"b\", \"env_var\": \"A\"}]}") ==
        "line 3: secrets[1].env_var duplicates secrets[0].env_var (A)");
  CHECK(error_for("{\n  \"secrets\": [\n    {\"name\": \"a\" \"env_var\": \"A\"}\n  ]\n}") == "line 3: invalid JSON");
  CHECK(error_for("{\n  \"secrets\": [\n    {\"name\": \"a\\\"]x\", \"env_var\": \"A\"},\n    {\"name\": 1, \"env_var\": \"B\"}\n  ]\n}") ==
        "line 4: secrets[1].name must be a string");
}
