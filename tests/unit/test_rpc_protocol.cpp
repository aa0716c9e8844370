// rpc/protocol: the JSON-RPC 2.0 reply shapes and the error codes of DESIGN.md
// section 4. Every error class, util's generic ones and the layers' own
// (lease::errc, server::errc), is pinned to its wire code, its machine name and
// the exit status the CLI gives it, so a change to the error enum cannot move a
// code that clients, the Go CLI among them, depend on.
#include "cmd/envelope.hpp"
#include "daemon/errors.hpp"
#include "lease/table.hpp"
#include "rpc/protocol.hpp"
#include "store/identity.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using nlohmann::json;
using util::Errc;

namespace {

struct Row
{
  Errc errc;
  const char* errc_name; // for the failure message
  int code;              // on the wire
  const char* name;      // error.data.code
  int exit;              // the CLI's exit status when the daemon answers with it
};

// As the daemon and the CLI behave before issue 16; tests/e2e pin the same codes
// end to end. util's generic classes, in the enum's order.
const std::vector<Row> k_generic = {
  {Errc::invalid_params, "invalid_params", -32602, "invalid_params", 2},
  {Errc::not_found, "not_found", -32000, "not_found", 4},
  {Errc::encryption, "encryption", -32004, "encryption_failed", 1},
  {Errc::decryption, "decryption", -32005, "decryption_failed", 1},
  {Errc::unauthorized, "unauthorized", -32006, "unauthorized", 5},
  {Errc::already_exists, "already_exists", -32010, "already_exists", 1},
  {Errc::io, "io", -32603, "internal_error", 1},
  {Errc::daemon_down, "daemon_down", -32603, "internal_error", 1}, // never sent; the CLI's own case is below
  {Errc::internal, "internal", -32603, "internal_error", 1},
};

// The layers' own.
const std::vector<Row> k_layers = {
  {lease::errc::not_found, "lease::errc::not_found", -32001, "lease_not_found", 4},
  {lease::errc::ended, "lease::errc::ended", -32002, "lease_ended", 1},
  {server::errc::rotation_failed, "server::errc::rotation_failed", -32003, "rotation_failed", 1},
  {server::errc::killswitch_tripped, "server::errc::killswitch_tripped", -32011, "killswitch_tripped", 5},
  {store::errc::locked, "store::errc::locked", -32012, "locked", 7},
};

cmd::Failure failure_of(auto thrower)
{
  try {
    thrower();
  } catch (...) {
    return cmd::failure_from_current_exception();
  }
  FAIL("no exception");
  return cmd::Failure{};
}

void check_row(const Row& row)
{
  CAPTURE(row.errc_name);
  CHECK(rpc::code_for(row.errc) == row.code);
  CHECK(std::string(rpc::name_for(row.code)) == row.name);
  if (row.errc != Errc::daemon_down) {
    // Thrown in the daemon, answered on the wire, shown by the CLI.
    const auto remote = failure_of([&] { throw rpc::RemoteError(rpc::code_for(row.errc), "m", "f"); });
    CHECK(remote.exit == row.exit);
    CHECK(remote.code == row.name);
    // Thrown in the CLI's own process (secrets init, audit --verify --offline ...).
    const auto local = failure_of([&] { throw util::Error(row.errc, "m", "f"); });
    CHECK(local.exit == row.exit);
    CHECK(local.code == row.name);
  }
}

} // namespace

TEST_CASE("rpc protocol: every error class has its wire code, its name and its exit status")
{
  // internal is the last generic value: a class added without a row here fails.
  CHECK(k_generic.size() == static_cast<size_t>(Errc::internal));
  std::set<int> seen;
  for (size_t i = 0; i < k_generic.size(); ++i) {
    CHECK(static_cast<size_t>(k_generic[i].errc) == i + 1);
    CHECK(util::layer_rpc_code(k_generic[i].errc) == 0);
    seen.insert(static_cast<int>(k_generic[i].errc));
    check_row(k_generic[i]);
  }
  for (const auto& row : k_layers) {
    CHECK(util::layer_rpc_code(row.errc) == row.code); // valued as its wire code
    seen.insert(static_cast<int>(row.errc));
    check_row(row);
  }
  CHECK(seen.size() == k_generic.size() + k_layers.size());
  const auto down = failure_of([] { throw util::Error(Errc::daemon_down, "daemon not running", "secrets serve &"); });
  CHECK(down.exit == 3);
  CHECK(down.code == "daemon_not_running");
  // A value outside both sets (none is made so; a cast could) is internal on the wire.
  CHECK(rpc::code_for(static_cast<Errc>(1000)) == -32603);
}

TEST_CASE("rpc protocol: rpc's client-side names are the layers' own codes")
{
  CHECK(rpc::code::lease_not_found == util::layer_rpc_code(lease::errc::not_found));
  CHECK(rpc::code::lease_ended == util::layer_rpc_code(lease::errc::ended));
  CHECK(rpc::code::rotation_failed == util::layer_rpc_code(server::errc::rotation_failed));
  CHECK(rpc::code::killswitch_tripped == util::layer_rpc_code(server::errc::killswitch_tripped));
  CHECK(rpc::code::locked == util::layer_rpc_code(store::errc::locked));
}

TEST_CASE("rpc protocol: the JSON-RPC codes of its own and their names")
{
  CHECK(rpc::code::parse_error == -32700);
  CHECK(rpc::code::invalid_request == -32600);
  CHECK(rpc::code::method_not_found == -32601);
  CHECK(rpc::code::invalid_params == -32602);
  CHECK(rpc::code::internal == -32603);
  CHECK(std::string(rpc::name_for(rpc::code::parse_error)) == "parse_error");
  CHECK(std::string(rpc::name_for(rpc::code::invalid_request)) == "invalid_request");
  CHECK(std::string(rpc::name_for(rpc::code::method_not_found)) == "method_not_found");
  CHECK(std::string(rpc::name_for(rpc::code::internal)) == "internal_error");
  // A code this version does not know (a newer daemon's) reads as internal_error.
  CHECK(std::string(rpc::name_for(-32099)) == "internal_error");
  CHECK(std::string(rpc::name_for(0)) == "internal_error");
  const auto unknown = failure_of([] { throw rpc::RemoteError(-32099, "m", "f"); });
  CHECK(unknown.exit == 1);
  CHECK(unknown.code == "internal_error");
}

TEST_CASE("rpc protocol: a result is jsonrpc, result and id, with the id as the request had it")
{
  for (const json& id : {json(7), json("req-1"), json(nullptr), json(0), json(-1)}) {
    const json r = rpc::make_result(id, {{"a", 1}});
    CHECK(r.size() == 3);
    CHECK(r["jsonrpc"] == "2.0");
    CHECK(r["id"] == id);
    CHECK(r["result"] == json{{"a", 1}});
    CHECK_FALSE(r.contains("error"));
  }
  // Any JSON is a result: null, a scalar, an array.
  CHECK(rpc::make_result(1, nullptr)["result"].is_null());
  CHECK(rpc::make_result(1, "ok")["result"] == "ok");
  CHECK(rpc::make_result(1, json::array({1, 2}))["result"] == json::array({1, 2}));
  // One line on the wire: the dump has no newline of its own.
  CHECK(rpc::make_result(1, {{"text", "a\nb"}}).dump().find('\n') == std::string::npos);
}

TEST_CASE("rpc protocol: an error carries code, message and data.code, and data.fix only when there is one")
{
  const json r = rpc::make_error("x", rpc::code::lease_ended, "lease x already ended (expired)", "secrets lease y");
  CHECK(r.size() == 3);
  CHECK(r["jsonrpc"] == "2.0");
  CHECK(r["id"] == "x");
  CHECK_FALSE(r.contains("result"));
  const json& e = r["error"];
  CHECK(e.size() == 3);
  CHECK(e["code"] == -32002);
  CHECK(e["message"] == "lease x already ended (expired)");
  CHECK(e["data"] == json{{"code", "lease_ended"}, {"fix", "secrets lease y"}});

  const json no_fix = rpc::make_error(nullptr, rpc::code::parse_error, "parse error: the line is not valid JSON");
  CHECK(no_fix["id"].is_null());
  CHECK(no_fix["error"]["code"] == -32700);
  CHECK(no_fix["error"]["data"] == json{{"code", "parse_error"}});

  // Every code's name goes into data.code.
  for (const int code : {rpc::code::secret_not_found, rpc::code::unauthorized, rpc::code::locked, -32099}) {
    CHECK(rpc::make_error(1, code, "m")["error"]["data"]["code"] == rpc::name_for(code));
  }
}
