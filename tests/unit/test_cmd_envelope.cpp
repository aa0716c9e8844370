#include "cmd/envelope.hpp"
#include "rpc/protocol.hpp"
#include "temp_dir.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

using cmd::json;

TEST_CASE("success envelope has the Go agent-secrets shape")
{
  const json e = cmd::success_envelope("secrets lease", {{"lease_id", "x"}}, {{"secrets revoke x", "revoke it"}});
  CHECK(e["ok"] == true);
  CHECK(e["success"] == true);
  CHECK(e["command"] == "secrets lease");
  CHECK(e["result"]["lease_id"] == "x");
  REQUIRE(e["next_actions"].size() == 1);
  CHECK(e["next_actions"][0]["command"] == "secrets revoke x");
  CHECK(e["next_actions"][0]["description"] == "revoke it");
  CHECK_FALSE(e.contains("error"));
}

TEST_CASE("error envelope always carries a code and a runnable fix")
{
  const json e = cmd::error_envelope("secrets lease", "secret x not found", "not_found", "secrets list");
  CHECK(e["ok"] == false);
  CHECK(e["success"] == false);
  CHECK(e["error"]["message"] == "secret x not found");
  CHECK(e["error"]["code"] == "not_found");
  CHECK(e["fix"] == "secrets list");
  const json no_fix = cmd::error_envelope("secrets", "boom", "internal_error", "");
  CHECK(no_fix["fix"] == "secrets --help");
}

TEST_CASE("failures map to the exit codes of DESIGN.md section 7")
{
  auto fail = [](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return cmd::failure_from_current_exception();
    }
    FAIL("no exception");
    return cmd::Failure{};
  };
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::secret_not_found, "m", "f"); }).exit == 4);
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::lease_not_found, "m", "f"); }).exit == 4);
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::unauthorized, "m", "f"); }).exit == 5);
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::killswitch_tripped, "m", "f"); }).exit == 5);
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::invalid_params, "m", "f"); }).exit == 2);
  CHECK(fail([] { throw rpc::RemoteError(rpc::code::internal, "m", "f"); }).exit == 1);
  // With no store yet, the fix starts with init (serve would only say to run it).
  const testutil::TempDir home;
  const testutil::ScopedEnv env("AGENT_SECRETS_HOME", home.path().c_str());
  const auto throw_down = [] { throw util::Error(util::Errc::daemon_down, "daemon not running", "secrets serve &"); };
  const auto first = fail(throw_down);
  CHECK(first.exit == 3);
  CHECK(first.code == "daemon_not_running");
  CHECK(first.fix == "secrets init && secrets serve &");
  util::write_file_atomic(home.file("identity.age"), "x");
  const auto down = fail(throw_down);
  CHECK(down.exit == 3);
  CHECK(down.fix == "secrets serve &");
}
