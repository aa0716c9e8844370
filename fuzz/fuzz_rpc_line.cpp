// The daemon's JSON-RPC line handler, from raw bytes to response: each input
// is sent, as is, down a real connection (a socketpair) to a server::Session
// of a fresh daemon State (new home: store init, audit log, all methods),
// followed by "\n" and a status request whose reply marks the end.
// Properties:
// - the connection stays open and answers every line in order, so the
//   closing status request is answered;
// - every reply is a JSON-RPC 2.0 object with a result or an error with an
//   integer code and a message; no request yields an internal error (-32603),
//   which would mean an exception the handlers did not expect;
// - afterwards the audit log's hash chain verifies.
// Inputs that give a secret a rotation hook are rejected (return -1): the
// hook is a shell command, and the fuzzer must not run arbitrary commands.
#include "audit/log.hpp"
#include "daemon/session.hpp"
#include "daemon/state.hpp"
#include "fuzz/fuzz.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <stdlib.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using nlohmann::json;
using stream = asio::local::stream_protocol;

constexpr const char* k_end_id = "fuzz-end-of-input";

// A private directory for the homes, removed at exit.
struct TempDir
{
  TempDir()
  {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path = std::string(base) + "/agent-secrets-fuzz-rpc-XXXXXX";
    fuzz::check(::mkdtemp(path.data()) != nullptr, "mkdtemp");
  }
  ~TempDir()
  {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

const server::MethodTable& methods()
{
  static const server::MethodTable table = server::all_methods();
  return table;
}

// True if a line of the input gives a secret a rotation hook (as the daemon
// reads it: the same JSON parser, the same line splitting).
bool sets_rotation_hook(std::string_view input)
{
  size_t pos = 0;
  while (pos < input.size()) {
    const size_t eol = std::min(input.find('\n', pos), input.size());
    const json request = json::parse(input.substr(pos, eol - pos), nullptr, false);
    pos = eol + 1;
    if (!request.is_object()) {
      continue;
    }
    const auto params = request.find("params");
    if (params != request.end() && params->is_object()) {
      const auto hook = params->find("rotate_via");
      if (hook != params->end() && !hook->is_null()) {
        return true;
      }
    }
  }
  return false;
}

void check_reply(const json& reply)
{
  fuzz::check(reply.is_object(), "a reply is a JSON object");
  fuzz::check(reply.value("jsonrpc", "") == "2.0", "a reply says jsonrpc 2.0");
  fuzz::check(reply.contains("result") != reply.contains("error"), "a reply has a result or an error");
  if (const auto error = reply.find("error"); error != reply.end()) {
    fuzz::check(error->is_object() && error->contains("code") && (*error)["code"].is_number_integer(),
                "an error has an integer code");
    fuzz::check(error->contains("message") && (*error)["message"].is_string(), "an error has a message");
    fuzz::check((*error)["code"] != -32603, "no request makes an internal error");
  }
}

// Reads replies until the end marker's reply, or until the daemon closes.
struct Client
{
  explicit Client(stream::socket s) : socket(std::move(s)) {}

  stream::socket socket;
  asio::streambuf buffer;
  bool got_end = false;

  void read(asio::io_context& io)
  {
    asio::async_read_until(socket, buffer, '\n', [this, &io](const boost::system::error_code& ec, size_t n) {
      if (ec) {
        io.stop(); // the daemon closed the connection
        return;
      }
      const std::string line(asio::buffers_begin(buffer.data()),
                             asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(n) - 1);
      buffer.consume(n);
      const json reply = json::parse(line, nullptr, false);
      fuzz::check(!reply.is_discarded(), "a reply is valid JSON");
      if (reply.is_object() && reply.contains("method")) {
        fuzz::check(reply["method"] == "lease.ended", "the only notification is lease.ended");
      } else {
        check_reply(reply);
        if (reply["id"] == k_end_id) {
          got_end = true;
          io.stop();
          return;
        }
      }
      read(io);
    });
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  static const TempDir dir;
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  const auto input = fuzz::as_text(data, size);
  if (sets_rotation_hook(input)) {
    return -1;
  }

  const util::Paths paths = util::paths_for(dir.path + "/home");
  {
    util::FakeClock clock;
    asio::io_context io;
    store::Store::init(paths, clock);
    audit::Log log(paths.audit, clock);
    server::State state(paths, clock, io, store::Store::open(paths, clock), log, server::Settings{});
    log.set_on_durable([&io, &state](uint64_t seq) { asio::post(io, [&state, seq] { state.on_durable(seq); }); });

    int fds[2];
    fuzz::check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
    std::make_shared<server::Session>(stream::socket(io, stream(), fds[0]), state, methods())->start();
    Client client(stream::socket(io, stream(), fds[1]));
    const std::string request = std::string(input) + "\n{\"jsonrpc\":\"2.0\",\"id\":\"" + k_end_id
                                + "\",\"method\":\"secrets.status\"}\n";
    asio::async_write(client.socket, asio::buffer(request), [](const boost::system::error_code&, size_t) {});
    client.read(io);
    io.run();
    fuzz::check(client.got_end, "the connection answers every line");

    state.join_workers();
    log.wait_durable(log.last_seq());
    fuzz::check(audit::verify_file(paths.audit).ok, "the audit log verifies");
    log.set_on_durable(nullptr);
  }
  std::error_code ec;
  std::filesystem::remove_all(paths.home, ec);
  return 0;
}
