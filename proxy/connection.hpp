#pragma once
// Internal to proxy/: one agent connection (server.cpp) and the upstream
// transfer a worker runs for one of its requests (transfer.cpp).
//
// Threads: a Connection is driven by the proxy thread while it reads a
// request's header, then by one worker while that request's transfer runs;
// never by both at once.

#include "proxy/server.hpp"
#include "proxy/spec.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace proxy {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

inline constexpr auto k_stall_timeout = std::chrono::seconds{60}; // an agent that stops reading or sending mid-request
// An audited path is cut to this many bytes: a request line is no way to
// write megabytes into the owner's audit log.
inline constexpr size_t k_max_audited_path = 256;

// A refusal as an HTTP response: its status and the JSON body
// {"error":{"type":"agent_secrets_proxy","code","message","fix","reason"?}}.
http::response<http::string_body> error_response(const Refusal& r, unsigned version, bool keep_alive);
Refusal refusal(int status, std::string code, std::string message, std::string fix = {});
// A path as the audit log gets it: placeholders redacted, at most
// k_max_audited_path bytes (cut on a UTF-8 boundary, ending in "...").
std::string audited_path(std::string_view path);
// Placeholders in `text` replaced by "as_[redacted]".
std::string redact_placeholders(std::string text);

class Connection : public std::enable_shared_from_this<Connection>
{
public:
  Connection(Server& server, tcp::socket socket, uid_t uid) : m_server(server), m_stream(std::move(socket)), m_uid(uid)
  {
  }

  void read_request();
  void close();
  // After an answer that leaves part of the request unread (a refusal, a 413
  // mid-body): closing at once would make the kernel reset the connection,
  // and the client could lose the answer with it. So: shutdown for sending,
  // then read and drop what comes (k_linger or k_linger_bytes at most), then close.
  void linger_close(size_t drained = 0);
  void release_cancelled()
  {
    if (m_cached && m_cached->grant && m_cached->grant->cancelled) {
      m_cached.reset();
    }
  }

  Server& m_server;
  beast::tcp_stream m_stream;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::buffer_body>> m_parser;
  Clock::time_point m_started;
  Route m_route;
  const uid_t m_uid; // owner of the agent's end, from SockDiag

private:
  // The last grant, for the next request with the same route and placeholders.
  struct Cached
  {
    std::shared_ptr<Grant> grant;
    std::string route;
    std::vector<std::string> placeholders;
  };
  std::optional<Cached> m_cached;

  void on_header(beast::error_code ec);
  void on_resolved(Resolution resolution);
  // Answers with `r`; audits it when r.authenticated, else counts it.
  void refuse(const Refusal& r, const std::string& method, const std::string& path);
  void run_transfer(std::shared_ptr<Grant> grant);
};

// What one request's upstream transfer came to (transfer.cpp).
struct TransferResult
{
  bool keep_alive = false; // the connection may carry another request
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string code; // empty, or why it failed: cut, client_closed, upstream_encoding, a refusal's code
};

// Runs the request whose header `c` has read to the upstream, on a worker
// thread, streaming both bodies. Throws only what libcurl's loading or an
// allocation throws.
TransferResult forward(Connection& c, const std::shared_ptr<Grant>& grant);

} // namespace proxy
