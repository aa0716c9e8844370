#include "proxy/connection.hpp"

#include "proxy/rewrite.hpp"
#include "proxy/scrub.hpp"
#include "proxy/sock_diag.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <unistd.h>

#include <array>

namespace proxy {

using json = nlohmann::json;

namespace {

constexpr size_t k_header_limit = 64 * 1024;
constexpr auto k_idle_timeout = std::chrono::seconds{60}; // a keep-alive connection with no new request
constexpr size_t k_reserved_fds = 256; // the RPC listener keeps 64; upstream connections and RPC clients use the rest
// A refused connection is read (and the bytes dropped) for this long or this
// much after its 403: closing with unread data would reset the connection,
// and the client could lose the 403 with it.
constexpr auto k_linger = std::chrono::seconds{2};
constexpr size_t k_linger_bytes = 64 * 1024;

// Every refusal says what to do, as every CLI error does.
std::string default_fix(const std::string& code)
{
  if (code == "upstream_error") {
    return "secrets list  # check the secret's base_url, and that its host is reachable from this machine";
  }
  if (code == "upstream_timeout") {
    return "raise proxy.total_timeout (or proxy.connect_timeout) in config.json";
  }
  if (code == "body_too_large") {
    return "raise proxy.max_body_bytes in config.json";
  }
  return "send http://<proxy.listen>/NAME/path with the placeholder from `secrets lease NAME` in a header";
}

// A connection refused before its request is read.
struct Refused
{
  Refused(tcp::socket socket, http::response<http::string_body> r) : stream(std::move(socket)), res(std::move(r)) {}
  beast::tcp_stream stream;
  http::response<http::string_body> res;
  std::array<char, 4096> sink{};
  size_t drained = 0;
};

// The kernel must be able to name a connection's owner, or every agent
// would be refused: tried once, on a connection of our own.
void check_peer_lookup(SockDiag& diag, const asio::ip::address& address, uid_t uid)
{
  std::string why;
  std::optional<uid_t> owner;
  try {
    asio::io_context io;
    tcp::acceptor listener(io, tcp::endpoint(address, 0));
    tcp::socket client(io);
    client.connect(listener.local_endpoint());
    tcp::socket accepted = listener.accept();
    if (accepted.remote_endpoint() != client.local_endpoint()) {
      why = "another connection came first";
    } else {
      owner = diag.peer_uid(accepted.native_handle(), &why);
    }
  } catch (const boost::system::system_error& e) {
    why = e.code().message();
  }
  if (owner != uid) {
    throw util::Error(util::Errc::io,
                      "the proxy cannot tell which user owns a connection (NETLINK_SOCK_DIAG): "
                        + (owner ? "the kernel named uid " + std::to_string(*owner) + " for our own" : why),
                      "load the inet_diag and tcp_diag kernel modules (modprobe tcp_diag), or set proxy.listen to "
                      "\"off\" in config.json");
  }
}

void drain(std::shared_ptr<Refused> r)
{
  r->stream.async_read_some(asio::buffer(r->sink), [r](beast::error_code ec, size_t n) {
    r->drained += n;
    if (!ec && r->drained < k_linger_bytes) {
      drain(r);
    }
  });
}

} // namespace

std::string redact_placeholders(std::string text)
{
  for (const auto& token : find_placeholders(text)) {
    text = replace_all(text, token, "as_[redacted]");
  }
  return text;
}

std::string audited_path(std::string_view path)
{
  std::string p = redact_placeholders(std::string(path));
  if (p.size() > k_max_audited_path) {
    constexpr std::string_view k_cut = "...";
    size_t keep = k_max_audited_path - k_cut.size();
    while (keep > 0 && (static_cast<unsigned char>(p[keep]) & 0xc0) == 0x80) {
      --keep; // not inside a UTF-8 sequence
    }
    p.resize(keep);
    p += k_cut;
  }
  return p;
}

http::response<http::string_body> error_response(const Refusal& r, unsigned version, bool keep_alive)
{
  json error = {{"type", "agent_secrets_proxy"}, {"code", r.code}, {"message", r.message},
                {"fix", r.fix.empty() ? default_fix(r.code) : r.fix}};
  if (!r.reason.empty()) {
    error["reason"] = r.reason;
  }
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::content_type, "application/json");
  if (r.status == 407) {
    // Required with 407 (RFC 9110 11.7.1); names what the proxy expects.
    res.set(http::field::proxy_authenticate, "Bearer realm=\"agent-secrets\"");
  }
  res.body() = json{{"error", std::move(error)}}.dump() + "\n";
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

Refusal refusal(int status, std::string code, std::string message, std::string fix)
{
  Refusal r;
  r.status = status;
  r.code = std::move(code);
  r.message = std::move(message);
  r.fix = std::move(fix);
  return r;
}

// ---------------------------------------------------------------- Connection

void Connection::read_request()
{
  m_parser.emplace();
  m_parser->header_limit(k_header_limit);
  m_parser->body_limit(m_server.m_cfg.max_body_bytes);
  m_stream.expires_after(k_idle_timeout);
  http::async_read_header(m_stream, m_buffer, *m_parser,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Connection::close()
{
  beast::error_code ec;
  m_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  m_stream.close();
  m_server.m_connections.erase(shared_from_this());
}

void Connection::linger_close(size_t drained)
{
  if (drained == 0) {
    beast::error_code ignored;
    m_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    m_stream.expires_after(k_linger);
  }
  auto sink = std::make_shared<std::array<char, 4096>>();
  m_stream.async_read_some(asio::buffer(*sink), [self = shared_from_this(), sink, drained](beast::error_code ec,
                                                                                           size_t n) {
    if (ec || drained + n >= k_linger_bytes) {
      self->close();
    } else {
      self->linger_close(drained + n);
    }
  });
}

void Connection::refuse(const Refusal& r, const std::string& method, const std::string& path)
{
  const bool keep = m_parser && m_parser->is_done() && m_parser->get().keep_alive() && r.status != 400;
  const unsigned version = m_parser && m_parser->is_header_done() ? m_parser->get().version() : 11;
  auto res = std::make_shared<http::response<http::string_body>>(error_response(r, version, keep));
  if (r.authenticated) {
    m_server.audit({{"action", "proxy_request"},
                    {"secret_name", r.secret_name},
                    {"client_id", r.client_id},
                    {"lease_id", r.lease_id},
                    {"details", r.code},
                    {"success", false},
                    {"method", method},
                    {"path", audited_path(path)},
                    {"status", r.status},
                    {"bytes_in", 0},
                    {"bytes_out", 0},
                    {"latency_ms", std::chrono::duration<double, std::milli>(Clock::now() - m_started).count()}});
  } else {
    // No valid placeholder: whoever sent this could write any number of
    // lines, of any text, into the owner's audit log. Counted instead.
    m_server.count_refusal(r.code);
  }
  m_server.finished(false);
  m_stream.expires_after(k_stall_timeout);
  http::async_write(m_stream, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
    if (!ec && keep) {
      self->read_request();
    } else if (!ec) {
      self->linger_close();
    } else {
      self->close();
    }
  });
}

void Connection::on_header(beast::error_code ec)
{
  m_started = Clock::now();
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted
      || ec == asio::error::eof || ec == asio::error::connection_reset) {
    close();
    return;
  }
  if (ec == http::error::body_limit) {
    // A Content-Length over the cap is known from the header alone.
    refuse(refusal(413, "body_too_large",
                   "the request body is over proxy.max_body_bytes (" + std::to_string(m_server.m_cfg.max_body_bytes) + ")"),
           std::string(m_parser->get().method_string()), "");
    return;
  }
  if (ec) {
    refuse(refusal(400, "bad_request", "malformed HTTP request: " + ec.message()), "", "");
    return;
  }
  const auto& req = m_parser->get();
  const std::string method(req.method_string());
  const std::string target(req.target());
  const auto route = split_target(target);
  if (!route) {
    refuse(refusal(400, "bad_request", "the request target must be /NAME/path, NAME a proxy-only secret",
                   "OPENAI_BASE_URL=http://" + m_server.address() + "/openai/v1"),
           method, "");
    return;
  }
  if (has_dot_segments(route->rest)) {
    refuse(refusal(400, "bad_request", "the path has dot segments or encoded slashes"), method, "");
    return;
  }
  m_route = *route;
  std::vector<std::string> tokens;
  auto collect = [&](std::string_view text) {
    for (auto& t : find_placeholders(text)) {
      if (std::find(tokens.begin(), tokens.end(), t) == tokens.end()) {
        tokens.push_back(std::move(t));
      }
    }
  };
  for (const auto& f : req) {
    collect(f.value());
  }
  collect(route->query);
  m_stream.expires_never();
  if (m_cached && m_cached->grant && m_cached->route == route->name && m_cached->placeholders == tokens
      && !m_cached->grant->cancelled && m_server.m_fresh(*m_cached->grant)) {
    on_resolved(m_cached->grant);
    return;
  }
  m_cached = Cached{nullptr, route->name, tokens};
  // Resolution happens on the daemon's thread; the answer comes back here.
  // Queued there, the callback holds only a weak reference (see the header).
  std::weak_ptr<Connection> weak = shared_from_this();
  asio::post(m_server.m_daemon_io, [weak, resolve = m_server.m_resolve, name = route->name, tokens = std::move(tokens),
                                    uid = m_uid, &io = m_server.m_io]() mutable {
    if (weak.expired()) {
      return;
    }
    Resolution r;
    try {
      r = resolve(name, tokens, uid);
    } catch (const std::exception& e) {
      r = refusal(502, "internal", std::string("the daemon could not resolve the request: ") + e.what());
    }
    asio::post(io, [weak, r = std::move(r)]() mutable {
      if (auto self = weak.lock()) {
        self->on_resolved(std::move(r));
      }
    });
  });
}

void Connection::on_resolved(Resolution resolution)
{
  const auto& req = m_parser->get();
  const std::string method(req.method_string());
  if (auto* r = std::get_if<Refusal>(&resolution)) {
    m_cached.reset();
    if (r->secret_name.empty()) {
      r->secret_name = m_route.name;
    }
    refuse(*r, method, m_route.rest);
    return;
  }
  auto grant = std::get<std::shared_ptr<Grant>>(std::move(resolution));
  if (m_cached) {
    m_cached->grant = grant;
  }
  const std::string path = grant->base_path + m_route.rest;
  if (!method_allowed(grant->spec, method) || !path_allowed(grant->spec, path.empty() ? "/" : path)) {
    Refusal r = refusal(407, "out_of_scope",
                        "secret " + grant->secret_name + " allows methods "
                          + (grant->spec.allow_methods.empty() ? std::string("any") : json(grant->spec.allow_methods).dump())
                          + " under paths " + json(grant->spec.allow_paths).dump() + "; not " + method + " "
                          + redact_placeholders(path),
                        "secrets list");
    r.lease_id = grant->lease_id;
    r.secret_name = grant->secret_name;
    r.client_id = grant->client_id;
    r.authenticated = true;
    refuse(r, method, path);
    return;
  }
  ++m_server.m_active;
  asio::post(*m_server.m_workers, [self = shared_from_this(), grant = std::move(grant)]() mutable {
    self->run_transfer(std::move(grant));
  });
}

void Connection::run_transfer(std::shared_ptr<Grant> grant)
{
  bool keep = false;
  json line = {{"action", "proxy_request"},
               {"secret_name", grant->secret_name},
               {"client_id", grant->client_id},
               {"lease_id", grant->lease_id},
               {"method", std::string(m_parser->get().method_string())}};
  try {
    const TransferResult t = forward(*this, grant);
    keep = t.keep_alive;
    line["host"] = grant->host;
    line["path"] = audited_path(grant->base_path + m_route.rest);
    line["status"] = t.status;
    line["bytes_in"] = t.bytes_in;
    line["bytes_out"] = t.bytes_out;
    line["success"] = t.status > 0 && t.status < 400 && t.code.empty();
    if (!t.code.empty()) {
      line["details"] = t.code;
    }
  } catch (const std::exception& e) {
    // net::curl() failing to load libcurl, or an allocation failure.
    line["success"] = false;
    line["details"] = std::string("internal: ") + e.what();
    keep = false;
  }
  line["latency_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - m_started).count();
  const bool ok = line.value("success", false);
  m_server.audit(std::move(line));
  --m_server.m_active;
  m_server.finished(ok);
  if (keep && !m_server.m_stopping) {
    // Started from this worker (the proxy thread is not touching this
    // connection meanwhile), so that the read needs no hop through it.
    read_request();
  } else {
    asio::post(m_server.m_io, [self = shared_from_this()] { self->linger_close(); });
  }
}

// ---------------------------------------------------------------- Server

void Grant::set_spec(store::ProxySpec s)
{
  spec = std::move(s);
  const auto url = parse_base_url(spec.base_url);
  host = url ? url->host : "";
  base_path = url ? url->path : "";
  injection = parse_injection(spec.inject).value_or(Injection{});
}

const std::shared_ptr<const Needles>& Grant::scrub_needles()
{
  std::call_once(m_needles_once, [this] { m_needles = proxy::scrub_needles(value.view(), placeholder); });
  return m_needles;
}

Server::Server(config::Proxy cfg, asio::io_context& daemon_io, Resolve resolve, Fresh fresh, Audit audit)
  : m_cfg(std::move(cfg)), m_daemon_io(daemon_io), m_resolve(std::move(resolve)), m_fresh(std::move(fresh)),
    m_audit(std::move(audit)), m_acceptor(m_io), m_uid(::geteuid())
{
}

Server::~Server()
{
  stop();
}

void Server::start()
{
  const auto colon = m_cfg.listen.rfind(':');
  std::string host = m_cfg.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const auto port = static_cast<unsigned short>(std::stoi(m_cfg.listen.substr(colon + 1)));
  try {
    // config allows only loopback hosts; "localhost" is the one name.
    const tcp::endpoint endpoint(asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host), port);
    m_acceptor.open(endpoint.protocol());
    m_acceptor.set_option(tcp::acceptor::reuse_address(true));
    m_acceptor.bind(endpoint);
    m_acceptor.listen(asio::socket_base::max_listen_connections);
    const auto bound = m_acceptor.local_endpoint();
    m_address = (bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string()) + ":"
                + std::to_string(bound.port());
  } catch (const boost::system::system_error& e) {
    beast::error_code ignored;
    m_acceptor.close(ignored);
    throw util::Error(util::Errc::io, "the proxy cannot listen on " + m_cfg.listen + ": " + e.code().message(),
                      "set proxy.listen in config.json to a free host:port, or \"off\"");
  }
  try {
    m_diag = std::make_unique<SockDiag>();
    check_peer_lookup(*m_diag, m_acceptor.local_endpoint().address(), m_uid);
  } catch (...) {
    beast::error_code ignored;
    m_acceptor.close(ignored);
    throw;
  }
  m_workers = std::make_unique<asio::thread_pool>(static_cast<size_t>(m_cfg.max_concurrent));
  accept();
  m_thread = std::thread([this] { m_io.run(); });
}

void Server::accept()
{
  m_acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || m_stopping) {
      return;
    }
    if (!ec && util::near_fd_limit(socket.native_handle(), k_reserved_fds)) {
      // Closed at once (the socket's destructor): proxy clients never take
      // the descriptors the daemon's socket, store and log need.
      accept();
    } else if (!ec) {
      // Loopback TCP is open to every local user: only ours is served.
      std::string why;
      const auto owner = m_diag->peer_uid(socket.native_handle(), &why);
      if (!owner) {
        refuse_connection(std::move(socket),
                          refusal(403, "unknown_peer", "the proxy cannot tell which user owns this connection: " + why,
                                  "connect over loopback from this host, as the user running secrets serve"));
      } else if (*owner != m_uid) {
        refuse_connection(std::move(socket),
                          refusal(403, "other_user",
                                  "this proxy serves only the user running the daemon (uid " + std::to_string(m_uid)
                                    + "); this connection belongs to uid " + std::to_string(*owner),
                                  "run the agent as uid " + std::to_string(m_uid)
                                    + ", or start its own daemon (secrets serve) with its own proxy.listen port"));
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        auto c = std::make_shared<Connection>(*this, std::move(socket), *owner);
        m_connections.insert(c);
        c->read_request();
      }
      accept();
    } else {
      // Out of descriptors, most likely: back off rather than spin.
      auto timer = std::make_shared<asio::steady_timer>(m_io, std::chrono::milliseconds{100});
      timer->async_wait([this, timer](beast::error_code) { accept(); });
    }
  });
}

void Server::stop()
{
  if (!m_thread.joinable()) {
    return;
  }
  m_stopping = true;
  m_workers->join(); // workers notice m_stopping within one slice
  asio::post(m_io, [this] {
    beast::error_code ec;
    m_acceptor.close(ec);
    for (const auto& c : std::set(m_connections)) {
      c->close();
    }
    m_io.stop();
  });
  m_thread.join();
  m_connections.clear();
}

void Server::audit(json line)
{
  try {
    m_audit(std::move(line));
  } catch (const std::exception&) {
    // Only an internal error (a line without action) gets here: the log's
    // I/O errors are its writer's, reported by the daemon.
    ++m_errors;
  }
}

void Server::finished(bool ok)
{
  ++m_requests;
  if (!ok) {
    ++m_errors;
  }
}

void Server::count_refusal(const std::string& code)
{
  const std::lock_guard lock(m_refused_mutex);
  ++m_refused[code];
}

void Server::refuse_connection(tcp::socket socket, const Refusal& r)
{
  count_refusal(r.code);
  auto refused = std::make_shared<Refused>(std::move(socket), error_response(r, 11, false));
  refused->stream.expires_after(k_linger); // the write and the drain together
  http::async_write(refused->stream, refused->res, [refused](beast::error_code ec, size_t) {
    if (ec) {
      return; // the stream's destructor closes the socket
    }
    beast::error_code ignored;
    refused->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    drain(refused);
  });
}

void Server::release_cancelled()
{
  asio::post(m_io, [this] {
    for (const auto& c : m_connections) {
      c->release_cancelled();
    }
  });
}

json Server::status() const
{
  uint64_t refused = 0;
  json by_code = json::object();
  {
    const std::lock_guard lock(m_refused_mutex);
    for (const auto& [code, count] : m_refused) {
      refused += count;
      by_code[code] = count;
    }
  }
  return {{"enabled", true},
          {"listen", m_address},
          {"requests", m_requests.load()},
          {"errors", m_errors.load()},
          {"active", m_active.load()},
          {"refused", refused},
          {"refused_by_code", std::move(by_code)}};
}

} // namespace proxy
