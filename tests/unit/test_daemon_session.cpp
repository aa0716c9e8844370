// The dispatcher's gates (daemon/method.hpp): every method of the daemon's
// table, sent down a real connection to a server::Session of a real State
// (fresh home, store, audit log), is refused with killswitch_tripped in each
// killswitch state exactly when its declaration says so; nothing is left to
// a handler to remember.
#include "audit/log.hpp"
#include "audit/verify.hpp"
#include "daemon/method.hpp"
#include "daemon/session.hpp"
#include "daemon/state.hpp"
#include "rpc/protocol.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"
#include "util/clock.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/socket.h>

namespace {

using nlohmann::json;
using stream = asio::local::stream_protocol;

// Sends one request per method of the table, with empty params, to a fresh
// daemon whose state `prepare` sets; returns each method's reply.
std::map<std::string, json> call_every_method(const server::MethodTable& table,
                                              const std::function<void(server::State&)>& prepare)
{
  spdlog::set_level(spdlog::level::off);
  testutil::TempDir dir;
  const util::Paths paths = util::paths_for(dir.path() + "/home");
  util::FakeClock clock;
  asio::io_context io;
  store::Store::init(paths, clock);
  audit::Log log(paths.audit, clock);
  std::map<std::string, json> replies;
  {
    server::State state(paths, clock, io, store::Store::open(paths, clock), log, server::Settings{});
    log.set_on_durable([&io, &state](uint64_t seq) { asio::post(io, [&state, seq] { state.on_durable(seq); }); });
    prepare(state);

    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    std::make_shared<server::Session>(stream::socket(io, stream(), fds[0]), state, table)->start();
    stream::socket client(io, stream(), fds[1]);
    std::string requests;
    for (const auto& [name, method] : table) {
      requests += json{{"jsonrpc", "2.0"}, {"id", name}, {"method", name}, {"params", json::object()}}.dump() + "\n";
    }
    asio::async_write(client, asio::buffer(requests), [](const boost::system::error_code&, size_t) {});
    asio::streambuf buffer;
    std::function<void()> read = [&] {
      asio::async_read_until(client, buffer, '\n', [&](const boost::system::error_code& ec, size_t n) {
        if (ec) {
          io.stop(); // closed: the missing replies fail the test
          return;
        }
        const std::string line(asio::buffers_begin(buffer.data()),
                               asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(n));
        buffer.consume(n);
        const json reply = json::parse(line);
        if (reply.contains("id")) { // not a lease.ended notification
          replies[reply["id"].get<std::string>()] = reply;
        }
        if (replies.size() == table.size()) {
          io.stop();
          return;
        }
        read();
      });
    };
    read();
    io.run();
    state.join_workers();
    log.wait_durable(log.last_seq());
    log.set_on_durable(nullptr);
  }
  CHECK(audit::verify_file(paths.audit).ok);
  return replies;
}

bool refused(const json& reply, int code = rpc::code::killswitch_tripped)
{
  const auto error = reply.find("error");
  return error != reply.end() && (*error)["code"] == code;
}

// Checks every method's reply against `expect_refused`, its declaration's verdict.
void check_gate(const server::MethodTable& table, const std::map<std::string, json>& replies,
                const std::function<bool(const server::Method&)>& expect_refused,
                int code = rpc::code::killswitch_tripped)
{
  REQUIRE(replies.size() == table.size());
  for (const auto& entry : table) {
    const std::string& name = entry.first; // not a structured binding: CAPTURE's lambda takes it
    CAPTURE(name);
    const std::string reply = replies.at(name).dump();
    CAPTURE(reply);
    CHECK(refused(replies.at(name), code) == expect_refused(entry.second));
  }
}

} // namespace

TEST_CASE("daemon: the table declares, for every method, what the gates need")
{
  const auto table = server::all_methods();
  for (const auto& entry : table) {
    const std::string& name = entry.first;
    const server::Method& method = entry.second;
    CAPTURE(name);
    CHECK(int(method.handler != nullptr) + int(method.async_handler != nullptr)
            + int(method.stream_handler != nullptr)
          == 1);
  }
  // What grants or extends access is refused while tripped (DESIGN.md section 8).
  CHECK_FALSE(table.at("secrets.lease").allowed_while_tripped);
  CHECK_FALSE(table.at("secrets.renew").allowed_while_tripped);
  // What ends access, and what says why, is served in every state.
  for (const char* name : {"secrets.revoke", "secrets.revokeAll", "secrets.status", "secrets.resetKillswitch"}) {
    CAPTURE(name);
    CHECK(table.at(name).allowed_while_tripped);
  }
  // Served while locked (DESIGN.md section 11).
  for (const char* name : {"secrets.status", "secrets.health", "secrets.audit", "secrets.revoke", "secrets.revokeAll"}) {
    CAPTURE(name);
    CHECK(table.at(name).allowed_while_locked);
  }
  CHECK_FALSE(table.at("secrets.lease").allowed_while_locked);
  CHECK_FALSE(table.at("secrets.add").allowed_while_locked);
}

TEST_CASE("daemon: no method is refused by the killswitch gate while it is not tripped")
{
  const auto table = server::all_methods();
  check_gate(table, call_every_method(table, [](server::State&) {}),
             [](const server::Method&) { return false; });
}

TEST_CASE("daemon: a tripped heartbeat refuses every method not declared allowed_while_tripped")
{
  const auto table = server::all_methods();
  const auto replies = call_every_method(table, [](server::State& s) { s.killswitch().trip("heartbeat: test"); });
  check_gate(table, replies, [](const server::Method& m) { return !m.allowed_while_tripped; });
  const json& renew = replies.at("secrets.renew");
  CHECK(renew["error"]["message"] == "killswitch tripped: heartbeat: test");
  CHECK(renew["error"]["data"]["fix"] == "secrets status --reset");
}

TEST_CASE("daemon: a running killswitch refuses the same, and a second killswitch")
{
  const auto table = server::all_methods();
  const auto replies = call_every_method(table, [](server::State& s) { s.killswitch().started(true); });
  check_gate(table, replies, [](const server::Method& m) { return !m.allowed_while_tripped || m.starts_killswitch; });
  CHECK(refused(replies.at("secrets.revokeAll")));
}

TEST_CASE("daemon: a wiped store also refuses every method that reads values or changes the store")
{
  const auto table = server::all_methods();
  const auto replies = call_every_method(table, [](server::State& s) {
    s.killswitch().started(true);
    s.killswitch().finished(true);
  });
  check_gate(table, replies,
             [](const server::Method& m) { return !m.allowed_while_tripped || m.reads_values || m.mutates_store; });
  CHECK(refused(replies.at("secrets.add")));
  CHECK(refused(replies.at("secrets.rotate")));
}

TEST_CASE("daemon: a locked store refuses every method not declared allowed_while_locked, and the rest run without it")
{
  const auto table = server::all_methods();
  const auto replies = call_every_method(table, [](server::State& s) { s.lock("manual", nullptr); });
  check_gate(table, replies, [](const server::Method& m) { return !m.allowed_while_locked; }, rpc::code::locked);
  const json& lease = replies.at("secrets.lease");
  CHECK(lease["error"]["message"] == "the store is locked (manual)");
  CHECK(lease["error"]["data"]["fix"] == "ask the user to run: secrets unlock");
  // What is served while locked answers without the store (no internal error).
  for (const char* name : {"secrets.status", "secrets.health", "secrets.revokeAll", "secrets.lock"}) {
    CAPTURE(name);
    CHECK(replies.at(name).contains("result"));
  }
  CHECK(replies.at("secrets.status")["result"]["locked"] == true);
}
