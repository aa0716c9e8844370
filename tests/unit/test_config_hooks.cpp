#include "config/hooks.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace {

using util::Errc;

// The util::Error a call throws; fails the test if none.
template<typename F>
util::Error error_of(F f)
{
  try {
    f();
  } catch (const util::Error& e) {
    return e;
  }
  FAIL("no error");
  return util::Error(Errc::internal, "");
}

struct Home
{
  testutil::TempDir dir;
  util::Paths paths = util::paths_for(dir.path());
  std::string hooks = config::hooks_path(paths);

  void write(const std::string& text, mode_t mode = 0600) const
  {
    util::write_file_atomic(hooks, text, 0600);
    ::chmod(hooks.c_str(), mode);
  }
};

} // namespace

TEST_CASE("config hooks: a missing hooks.json allows nothing")
{
  Home h;
  CHECK(config::load_hooks(h.paths).commands.empty());
}

TEST_CASE("config hooks: allow, replace and remove round-trip through a 0600 file")
{
  Home h;
  CHECK_FALSE(config::allow_hook(h.paths, "db", "vault write -field=password db/rotate"));
  CHECK(config::allow_hook(h.paths, "api", "echo 'new key'") == std::nullopt);
  struct stat st{};
  REQUIRE(::lstat(h.hooks.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(S_ISREG(st.st_mode));

  auto hooks = config::load_hooks(h.paths);
  REQUIRE(hooks.find("db"));
  CHECK(*hooks.find("db") == "vault write -field=password db/rotate");
  CHECK(*hooks.find("api") == "echo 'new key'");
  CHECK(hooks.find("other") == nullptr);
  CHECK(util::read_file(h.hooks)
        == "{\n  \"version\": 1,\n  \"hooks\": {\n    \"api\": \"echo 'new key'\",\n"
           "    \"db\": \"vault write -field=password db/rotate\"\n  }\n}\n");

  CHECK(config::allow_hook(h.paths, "db", "other") == "vault write -field=password db/rotate");
  CHECK(*config::load_hooks(h.paths).find("db") == "other");
  CHECK(config::remove_hook(h.paths, "db") == "other");
  CHECK(config::remove_hook(h.paths, "db") == std::nullopt);
  hooks = config::load_hooks(h.paths);
  CHECK(hooks.commands.size() == 1);
  CHECK(hooks.find("db") == nullptr);
}

TEST_CASE("config hooks: an empty name or command is refused")
{
  Home h;
  CHECK(error_of([&] { config::allow_hook(h.paths, "", "true"); }).code() == Errc::invalid_params);
  CHECK(error_of([&] { config::allow_hook(h.paths, "k", ""); }).code() == Errc::invalid_params);
  CHECK_FALSE(std::filesystem::exists(h.hooks));
}

TEST_CASE("config hooks: a symlink is refused, also when it points at a good file")
{
  Home h;
  testutil::TempDir elsewhere;
  const std::string target = elsewhere.file("hooks.json");
  util::write_file_atomic(target, R"({"version":1,"hooks":{"k":"touch /tmp/pwned"}})", 0600);
  REQUIRE(::symlink(target.c_str(), h.hooks.c_str()) == 0);
  const auto e = error_of([&] { config::load_hooks(h.paths); });
  CHECK(e.code() == Errc::unauthorized);
  CHECK(std::string(e.what()).find("is a symlink") != std::string::npos);
  CHECK(e.fix().find("rm " + h.hooks) == 0);
  // The CLI does not write through it either.
  CHECK(error_of([&] { config::allow_hook(h.paths, "k", "true"); }).code() == Errc::unauthorized);
  CHECK(util::read_file(target) == R"({"version":1,"hooks":{"k":"touch /tmp/pwned"}})");
}

TEST_CASE("config hooks: group- or other-accessible files and homes are refused with a chmod fix")
{
  Home h;
  const std::string good = R"({"version":1,"hooks":{"k":"true"}})";
  for (const mode_t mode : {0620, 0602, 0640, 0604}) {
    h.write(good, mode);
    const auto e = error_of([&] { config::load_hooks(h.paths); });
    CHECK(e.code() == Errc::unauthorized);
    CHECK(e.fix() == "chmod 600 " + h.hooks);
  }
  h.write(good, 0600);
  CHECK(config::load_hooks(h.paths).commands.size() == 1);
  ::chmod(h.dir.path().c_str(), 0770);
  const auto e = error_of([&] { config::load_hooks(h.paths); });
  CHECK(e.fix() == "chmod 700 " + h.dir.path());
  ::chmod(h.dir.path().c_str(), 0700);
}

TEST_CASE("config hooks: a directory or a FIFO as hooks.json is refused without blocking")
{
  Home h;
  REQUIRE(::mkfifo(h.hooks.c_str(), 0600) == 0);
  CHECK(error_of([&] { config::load_hooks(h.paths); }).code() == Errc::unauthorized);
  ::unlink(h.hooks.c_str());
  REQUIRE(::mkdir(h.hooks.c_str(), 0700) == 0);
  CHECK(error_of([&] { config::load_hooks(h.paths); }).code() == Errc::unauthorized);
}

TEST_CASE("config hooks: strict parsing")
{
  const std::string path = "/h/hooks.json";
  auto message = [&](std::string_view text) {
    const auto e = error_of([&] { config::parse_hooks(text, path); });
    CHECK(e.code() == Errc::invalid_params);
    CHECK(e.fix() == "edit " + path);
    return std::string(e.what());
  };
  CHECK(config::parse_hooks(R"({"version":1})", path).commands.empty());
  CHECK(config::parse_hooks(R"({"version":1,"hooks":{}})", path).commands.empty());
  CHECK(message("") .find("invalid JSON") != std::string::npos);
  CHECK(message("[]").find("top level") != std::string::npos);
  CHECK(message(R"({"hooks":{}})").find("\"version\" must be 1") != std::string::npos);
  CHECK(message(R"({"version":2,"hooks":{}})").find("\"version\" must be 1") != std::string::npos);
  CHECK(message(R"({"version":1,"hook":{}})").find("unknown key \"hook\"") != std::string::npos);
  CHECK(message(R"({"version":1,"hooks":[]})").find("\"hooks\" must be an object") != std::string::npos);
  CHECK(message(R"({"version":1,"hooks":{"k":""}})").find("non-empty string") != std::string::npos);
  CHECK(message(R"({"version":1,"hooks":{"k":1}})").find("non-empty string") != std::string::npos);
  CHECK(message(R"({"version":1,"hooks":{"":"true"}})").find("empty secret name") != std::string::npos);
  // Two entries for one secret: which one runs must not be a parser's choice.
  CHECK(message(R"({"version":1,"hooks":{"k":"true","k":"touch /tmp/x"}})").find("duplicate key \"k\"")
        != std::string::npos);
}

TEST_CASE("config hooks: allows from parallel CLIs are all kept")
{
  Home h;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&h, i] { config::allow_hook(h.paths, "k" + std::to_string(i), "echo " + std::to_string(i)); });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(config::load_hooks(h.paths).commands.size() == 8);
}

TEST_CASE("config hooks: shell_quote survives single quotes")
{
  CHECK(config::shell_quote("echo hi") == "'echo hi'");
  CHECK(config::shell_quote("echo 'a b'") == "'echo '\\''a b'\\'''");
}
