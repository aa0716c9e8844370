#include "proxy/server.hpp"

#include "net/curl.hpp"
#include "proxy/rewrite.hpp"
#include "proxy/spec.hpp"
#include "store/age/primitives.hpp"
#include "util/encoding.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstring>

namespace proxy {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t k_header_limit = 64 * 1024;
constexpr auto k_idle_timeout = std::chrono::seconds{60};  // a keep-alive connection with no new request
constexpr auto k_stall_timeout = std::chrono::seconds{60}; // an agent that stops reading or sending mid-request
constexpr int k_slice_ms = 100;                            // how often a blocked worker checks for cancellation
constexpr size_t k_flush_bytes = 64 * 1024;                // response bytes held before a write
constexpr size_t k_reserved_fds = 256; // the RPC listener keeps 64; upstream connections and RPC clients use the rest

bool iequals(std::string_view a, std::string_view b)
{
  return beast::iequals(a, b);
}

std::string redact_placeholders(std::string text)
{
  for (const auto& token : find_placeholders(text)) {
    text = replace_all(text, token, "as_[redacted]");
  }
  return text;
}

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

Refusal refusal(int status, std::string code, std::string message, std::string fix = {})
{
  Refusal r;
  r.status = status;
  r.code = std::move(code);
  r.message = std::move(message);
  r.fix = std::move(fix);
  return r;
}

// A blocking view of the agent's socket for a worker: Beast's SyncReadStream
// and SyncWriteStream over poll() in k_slice_ms slices, so that a revoked
// lease or a stopping daemon interrupts a transfer stuck on a slow agent.
class FdStream
{
public:
  FdStream(int fd, const std::atomic<bool>& cancelled, const std::atomic<bool>& stopping)
    : m_fd(fd), m_cancelled(cancelled), m_stopping(stopping)
  {
  }

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec)
  {
    const asio::mutable_buffer b = first(buffers);
    return io(POLLIN, ec, [&] { return ::recv(m_fd, b.data(), b.size(), 0); }, b.size());
  }
  // The throwing forms Beast's stream concepts also require.
  template <typename Buffers>
  size_t read_some(const Buffers& buffers)
  {
    return or_throw([&](beast::error_code& ec) { return read_some(buffers, ec); });
  }
  // A gather write: a chunk's size line, data and CRLF, or a header's
  // fields, leave in one sendmsg rather than one send each.
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec)
  {
    iovec iov[64];
    size_t count = 0;
    size_t total = 0;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers) && count < 64; ++it) {
      const asio::const_buffer b = *it;
      if (b.size() > 0) {
        iov[count++] = {const_cast<void*>(b.data()), b.size()};
        total += b.size();
      }
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    return io(POLLOUT, ec, [&] { return ::sendmsg(m_fd, &msg, MSG_NOSIGNAL); }, total);
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers)
  {
    return or_throw([&](beast::error_code& ec) { return write_some(buffers, ec); });
  }

private:
  template <typename Op>
  static size_t or_throw(Op op)
  {
    beast::error_code ec;
    const size_t n = op(ec);
    if (ec) {
      throw beast::system_error{ec};
    }
    return n;
  }

  template <typename Buffers>
  static auto first(const Buffers& buffers)
  {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
      if (asio::buffer_size(*it) > 0) {
        return *it;
      }
    }
    return *asio::buffer_sequence_begin(buffers);
  }

  template <typename Op>
  size_t io(short events, beast::error_code& ec, Op op, size_t size)
  {
    ec = {};
    if (size == 0) {
      return 0;
    }
    const auto deadline = Clock::now() + k_stall_timeout;
    for (;;) {
      if (m_cancelled || m_stopping) {
        ec = asio::error::operation_aborted;
        return 0;
      }
      const ssize_t n = op();
      if (n > 0) {
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
      if (Clock::now() > deadline) {
        ec = beast::error::timeout;
        return 0;
      }
      pollfd p{m_fd, events, 0};
      ::poll(&p, 1, k_slice_ms);
    }
  }

  int m_fd;
  const std::atomic<bool>& m_cancelled;
  const std::atomic<bool>& m_stopping;
};

// One multi handle per worker thread: it keeps the upstream connections
// (and TLS sessions) alive between requests.
struct WorkerHandles
{
  CURLM* multi = nullptr;
  ~WorkerHandles()
  {
    if (multi) {
      net::curl().multi_cleanup(multi);
    }
  }
};

thread_local WorkerHandles t_handles;

} // namespace

// ---------------------------------------------------------------- Connection

class Connection : public std::enable_shared_from_this<Connection>
{
public:
  Connection(Server& server, tcp::socket socket) : m_server(server), m_stream(std::move(socket)) {}

  void read_request();
  void close();
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
  void refuse(const Refusal& r, const std::string& method, const std::string& path);
  void run_transfer(std::shared_ptr<Grant> grant);
};

// ---------------------------------------------------------------- Transfer

// One upstream request on a worker thread.
class Transfer
{
public:
  Transfer(Connection& c, std::shared_ptr<Grant> grant)
    : m_c(c), m_grant(std::move(grant)), m_req(c.m_parser->get()),
      m_io(c.m_stream.socket().native_handle(), m_grant->cancelled, c.m_server.m_stopping),
      m_scrub(std::string(m_grant->value.view()), m_grant->placeholder), m_injection(m_grant->injection)
  {
    if (m_injection.kind == Injection::Kind::body) {
      m_inject_body.emplace(m_grant->placeholder, std::string(m_grant->value.view()));
    }
  }

  // Returns whether the connection may carry another request.
  bool run();

  int status() const { return m_status; }
  uint64_t bytes_in() const { return m_bytes_in; }
  uint64_t bytes_out() const { return m_bytes_out; }
  const std::string& code() const { return m_code; }

private:
  static size_t on_read(char* buf, size_t size, size_t n, void* self);
  static size_t on_header(char* buf, size_t size, size_t n, void* self);
  static size_t on_write(char* buf, size_t size, size_t n, void* self);

  curl_slist* upstream_headers() const;
  std::string upstream_url() const;
  bool send_head();
  bool send_body(std::string_view data);
  bool flush();
  bool send_error(const Refusal& r);
  bool read_body_piece();

  Connection& m_c;
  std::shared_ptr<Grant> m_grant;
  http::request<http::buffer_body>& m_req;
  FdStream m_io;
  Replacer m_scrub;
  Injection m_injection;
  std::optional<Replacer> m_inject_body;

  // upload
  std::string m_up;
  size_t m_up_offset = 0;
  bool m_up_done = false;
  bool m_body_too_large = false;
  bool m_client_failed = false;

  // response
  CURL* m_easy = nullptr;
  int m_status = 0;
  std::vector<std::pair<std::string, std::string>> m_headers;
  bool m_head_sent = false;
  bool m_chunked = false;
  bool m_no_body = false;
  bool m_keep_alive = true;
  std::string m_out;
  // The response goes out when the worker is about to wait (for the upstream
  // or the agent), or past k_flush_bytes: a small answer leaves in one
  // sendmsg, and each event of a stream still leaves as it arrives.
  std::string m_pending;
  std::string m_code;

  uint64_t m_bytes_in = 0;
  uint64_t m_bytes_out = 0;
};

std::string Transfer::upstream_url() const
{
  std::string query = drop_query_params_containing(m_c.m_route.query, k_placeholder_prefix);
  if (m_injection.kind == Injection::Kind::query) {
    query = drop_query_param(query, m_injection.name);
    std::string param = m_injection.name + "=" + util::percent_encode(m_grant->value.view());
    query = query.empty() ? std::move(param) : query + "&" + param;
  }
  return m_grant->spec.base_url + m_c.m_route.rest + (query.empty() ? "" : "?" + query);
}

curl_slist* Transfer::upstream_headers() const
{
  const auto& api = net::curl();
  std::vector<std::string> connection_named;
  for (const auto& f : m_req) {
    if (f.name() == http::field::connection) {
      for (const auto& token : http::token_list{f.value()}) {
        connection_named.emplace_back(token);
      }
    }
  }
  curl_slist* list = nullptr;
  auto add = [&](std::string line) {
    list = api.slist_append(list, line.c_str());
    util::wipe(line);
  };
  for (const auto& f : m_req) {
    const std::string_view name = f.name_string();
    const std::string_view value = f.value();
    bool drop = is_hop_by_hop(name) || iequals(name, "host") || iequals(name, "accept-encoding")
                || value.find(k_placeholder_prefix) != std::string_view::npos;
    for (const auto& n : connection_named) {
      drop = drop || iequals(name, n);
    }
    switch (m_injection.kind) {
      case Injection::Kind::bearer:
      case Injection::Kind::basic:
        drop = drop || f.name() == http::field::authorization;
        break;
      case Injection::Kind::header:
        drop = drop || iequals(name, m_injection.name);
        break;
      default:
        break;
    }
    if (!drop) {
      // curl's syntax for a header with an empty value is "Name;".
      add(std::string(name) + (value.empty() ? ";" : ": " + std::string(value)));
    }
  }
  const std::string_view secret = m_grant->value.view();
  switch (m_injection.kind) {
    case Injection::Kind::bearer:
      add("Authorization: Bearer " + std::string(secret));
      break;
    case Injection::Kind::basic: {
      const auto* p = reinterpret_cast<const uint8_t*>(secret.data());
      add("Authorization: Basic " + store::age::primitives::base64_encode_padded({p, secret.size()}));
      break;
    }
    case Injection::Kind::header:
      add(m_injection.name + ": " + std::string(secret));
      break;
    default:
      break;
  }
  // Identity encoding, so that scrubbing sees the response as sent; no
  // 100-continue round trip.
  add("Accept-Encoding: identity");
  add("Expect:");
  return list;
}

bool Transfer::read_body_piece()
{
  auto& parser = *m_c.m_parser;
  char piece[64 * 1024];
  parser.get().body().data = piece;
  parser.get().body().size = sizeof(piece);
  beast::error_code ec;
  http::read(m_io, m_c.m_buffer, parser, ec);
  if (ec == http::error::need_buffer) {
    ec = {};
  }
  const size_t n = sizeof(piece) - parser.get().body().size;
  if (ec == http::error::body_limit) {
    m_body_too_large = true;
    return false;
  }
  if (ec) {
    m_client_failed = true;
    return false;
  }
  m_bytes_in += n;
  const std::string_view data(piece, n);
  if (m_inject_body) {
    if (m_up_offset == m_up.size()) {
      m_up.clear();
      m_up_offset = 0;
    }
    m_inject_body->feed(data, m_up);
    if (parser.is_done()) {
      m_inject_body->finish(m_up);
    }
  } else {
    m_up.append(data);
  }
  explicit_bzero(piece, n);
  m_up_done = parser.is_done();
  return true;
}

size_t Transfer::on_read(char* buf, size_t size, size_t n, void* self_ptr)
{
  auto& self = *static_cast<Transfer*>(self_ptr);
  if (self.m_up_offset == self.m_up.size() && !self.m_up_done && !self.flush()) {
    return CURL_READFUNC_ABORT; // an early answer goes out before the agent is waited on
  }
  while (self.m_up_offset == self.m_up.size() && !self.m_up_done) {
    self.m_up.clear();
    self.m_up_offset = 0;
    if (!self.read_body_piece()) {
      return CURL_READFUNC_ABORT;
    }
  }
  const size_t count = std::min(size * n, self.m_up.size() - self.m_up_offset);
  std::memcpy(buf, self.m_up.data() + self.m_up_offset, count);
  self.m_up_offset += count;
  if (self.m_up_offset == self.m_up.size()) {
    util::wipe(self.m_up); // it may hold the value (--inject body)
    self.m_up_offset = 0;
  }
  return count;
}

size_t Transfer::on_header(char* buf, size_t size, size_t n, void* self_ptr)
{
  auto& self = *static_cast<Transfer*>(self_ptr);
  std::string_view line(buf, size * n);
  if (line.starts_with("HTTP/")) {
    self.m_headers.clear(); // a new response: after a 1xx, or the first
    return size * n;
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    long code = 0;
    net::curl().easy_getinfo(self.m_easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200) {
      self.m_status = static_cast<int>(code);
      if (!self.send_head()) {
        return 0;
      }
    }
    return size * n;
  }
  const auto colon = line.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    self.m_headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

bool Transfer::send_head()
{
  if (m_head_sent) {
    return true;
  }
  m_head_sent = true;
  http::response<http::empty_body> res;
  res.version(m_req.version());
  res.result(static_cast<unsigned>(m_status));
  std::vector<std::string> connection_named;
  for (const auto& [name, value] : m_headers) {
    if (iequals(name, "connection")) {
      for (const auto& token : http::token_list{value}) {
        connection_named.emplace_back(token);
      }
    }
  }
  const bool head = m_req.method() == http::verb::head;
  m_no_body = head || m_status == 204 || m_status == 304;
  for (const auto& [name, value] : m_headers) {
    bool drop = is_hop_by_hop(name);
    for (const auto& n : connection_named) {
      drop = drop || iequals(name, n);
    }
    if (head && iequals(name, "content-length")) {
      drop = false; // a HEAD answer keeps the length of the GET it describes
    }
    if (!drop) {
      std::string clean = replace_all(value, m_grant->value.view(), m_grant->placeholder);
      res.insert(name, clean);
    }
  }
  m_keep_alive = m_req.keep_alive();
  if (!m_no_body) {
    if (m_req.version() >= 11) {
      res.chunked(true);
      m_chunked = true;
    } else {
      m_keep_alive = false; // HTTP/1.0: the body ends when the connection does
    }
  }
  res.keep_alive(m_keep_alive);
  http::response_serializer<http::empty_body> sr{res};
  sr.split(true);
  beast::error_code ec;
  while (!ec && !sr.is_header_done()) {
    sr.next(ec, [&](beast::error_code&, const auto& buffers) {
      for (const auto b : beast::buffers_range_ref(buffers)) {
        m_pending.append(static_cast<const char*>(b.data()), b.size());
      }
      sr.consume(beast::buffer_bytes(buffers));
    });
  }
  return !ec;
}

bool Transfer::flush()
{
  if (m_pending.empty()) {
    return !m_client_failed;
  }
  beast::error_code ec;
  asio::write(m_io, asio::const_buffer(m_pending.data(), m_pending.size()), ec);
  m_pending.clear();
  if (ec) {
    m_client_failed = true;
  }
  return !ec;
}

bool Transfer::send_body(std::string_view data)
{
  if (data.empty() || m_no_body) {
    return true; // an empty chunk would end the body
  }
  if (m_chunked) {
    char size[20];
    m_pending.append(size, static_cast<size_t>(std::snprintf(size, sizeof(size), "%zx\r\n", data.size())));
    m_pending.append(data);
    m_pending.append("\r\n");
  } else {
    m_pending.append(data);
  }
  m_bytes_out += data.size();
  return m_pending.size() < k_flush_bytes || flush();
}

size_t Transfer::on_write(char* buf, size_t size, size_t n, void* self_ptr)
{
  auto& self = *static_cast<Transfer*>(self_ptr);
  if (self.m_grant->cancelled || !self.send_head()) {
    return 0;
  }
  self.m_out.clear();
  self.m_scrub.feed({buf, size * n}, self.m_out);
  return self.send_body(self.m_out) ? size * n : 0;
}

bool Transfer::send_error(const Refusal& r)
{
  m_status = r.status;
  m_code = r.code;
  if (m_head_sent) {
    return false; // too late for a status: cutting the connection is the signal
  }
  m_head_sent = true;
  // The rest of the request body is still in the socket: close after this.
  const bool keep = m_c.m_parser->is_done() && m_req.keep_alive();
  auto res = error_response(r, m_req.version(), keep);
  beast::error_code ec;
  http::write(m_io, res, ec);
  return keep && !ec;
}

bool Transfer::run()
{
  const auto& api = net::curl();
  const auto& req = m_req;
  for (const char c : m_grant->value.view()) {
    if ((c == '\r' || c == '\n' || c == '\0') && m_injection.kind != Injection::Kind::body
        && m_injection.kind != Injection::Kind::query) {
      return send_error(refusal(502, "unusable_credential",
                                "the secret's value holds a line break or NUL and cannot go into a header",
                                "secrets add " + m_grant->secret_name + " --force --proxy-only ..."));
    }
  }
  if (!t_handles.multi) {
    t_handles.multi = api.multi_init();
  }
  m_easy = api.easy_init();
  if (!t_handles.multi || !m_easy) {
    return send_error(refusal(502, "upstream_error", "libcurl could not start a transfer"));
  }
  char errbuf[CURL_ERROR_SIZE] = {};
  std::string url = upstream_url();
  curl_slist* headers = upstream_headers();
  const auto& cfg = m_c.m_server.m_cfg;
  const std::string method(req.method_string());
  api.easy_setopt(m_easy, CURLOPT_URL, url.c_str());
  api.easy_setopt(m_easy, CURLOPT_PROTOCOLS_STR, "http,https");
  api.easy_setopt(m_easy, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(m_easy, CURLOPT_PATH_AS_IS, 1L);
  api.easy_setopt(m_easy, CURLOPT_HTTPHEADER, headers);
  api.easy_setopt(m_easy, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(m_easy, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.connect_timeout).count()));
  api.easy_setopt(m_easy, CURLOPT_TIMEOUT_MS,
                  static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.total_timeout).count()));
  if (!cfg.ca_file.empty()) {
    // An extra CA on top of the system's, for tests and private upstreams.
    api.easy_setopt(m_easy, CURLOPT_CAINFO, cfg.ca_file.c_str());
    api.easy_setopt(m_easy, CURLOPT_CAPATH, "/etc/ssl/certs");
  }
  api.easy_setopt(m_easy, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  api.easy_setopt(m_easy, CURLOPT_HEADERDATA, this);
  api.easy_setopt(m_easy, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
  api.easy_setopt(m_easy, CURLOPT_WRITEDATA, this);
  const auto& parser = *m_c.m_parser;
  const bool has_body = parser.chunked() || parser.content_length().has_value();
  if (req.method() == http::verb::head) {
    api.easy_setopt(m_easy, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    api.easy_setopt(m_easy, CURLOPT_UPLOAD, 1L);
    api.easy_setopt(m_easy, CURLOPT_READFUNCTION, &Transfer::on_read);
    api.easy_setopt(m_easy, CURLOPT_READDATA, this);
    if (parser.content_length() && !m_inject_body) {
      api.easy_setopt(m_easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(*parser.content_length()));
    }
    api.easy_setopt(m_easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (req.method() != http::verb::get) {
    api.easy_setopt(m_easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  m_up_done = !has_body || parser.is_done();
  if (!m_up_done && beast::iequals(req[http::field::expect], "100-continue")) {
    // The agent waits for this before it sends the body; the upstream's own
    // 100 is not relayed (curl is told not to ask for one).
    static constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
    beast::error_code ec;
    asio::write(m_io, asio::const_buffer(k_continue.data(), k_continue.size()), ec);
  }

  api.multi_add_handle(t_handles.multi, m_easy);
  CURLcode result = CURLE_OK;
  bool cancelled = false;
  for (;;) {
    int running = 0;
    if (api.multi_perform(t_handles.multi, &running) != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    if (running == 0) {
      int left = 0;
      while (CURLMsg* msg = api.multi_info_read(t_handles.multi, &left)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == m_easy) {
          result = msg->data.result;
        }
      }
      break;
    }
    if (m_grant->cancelled || m_c.m_server.m_stopping) {
      cancelled = true;
      break;
    }
    if (!flush()) {
      break; // the agent is gone: m_client_failed
    }
    api.multi_poll(t_handles.multi, nullptr, 0, k_slice_ms, nullptr);
  }
  api.multi_remove_handle(t_handles.multi, m_easy);
  api.easy_cleanup(m_easy);
  api.slist_free_all(headers);
  util::wipe(url);
  m_easy = nullptr;
  // A transfer that completed before the lease ended stands; one that failed
  // because it ended (the write callback refusing) counts as cut.
  cancelled = cancelled || (result != CURLE_OK && m_grant->cancelled);

  if (cancelled) {
    Refusal r = refusal(407, "revoked", "the lease ended during the request", "secrets lease " + m_grant->secret_name);
    send_error(r);
    m_code = "cut";
    return false;
  }
  if (m_client_failed) {
    m_code = "client_closed";
    return false;
  }
  if (m_body_too_large) {
    return send_error(refusal(413, "body_too_large",
                              "the request body is over proxy.max_body_bytes (" + std::to_string(cfg.max_body_bytes) + ")",
                              "raise proxy.max_body_bytes in config.json"));
  }
  if (result != CURLE_OK) {
    const bool timeout = result == CURLE_OPERATION_TIMEDOUT;
    std::string detail = errbuf[0] ? errbuf : api.easy_strerror(result);
    detail = replace_all(detail, m_grant->value.view(), m_grant->placeholder);
    return send_error(refusal(timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_error",
                              "upstream request failed: " + detail));
  }
  if (!send_head()) {
    return false;
  }
  m_out.clear();
  m_scrub.finish(m_out);
  if (!send_body(m_out)) {
    return false;
  }
  if (m_chunked) {
    m_pending.append("0\r\n\r\n");
  }
  if (!flush()) {
    return false;
  }
  // Another request only if this one's body was read to its end.
  return m_keep_alive && m_c.m_parser->is_done();
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

void Connection::refuse(const Refusal& r, const std::string& method, const std::string& path)
{
  const bool keep = m_parser && m_parser->is_done() && m_parser->get().keep_alive() && r.status != 400;
  const unsigned version = m_parser && m_parser->is_header_done() ? m_parser->get().version() : 11;
  auto res = std::make_shared<http::response<http::string_body>>(error_response(r, version, keep));
  m_server.audit({{"action", "proxy_request"},
                  {"secret_name", r.secret_name},
                  {"client_id", r.client_id},
                  {"lease_id", r.lease_id},
                  {"details", r.code},
                  {"success", false},
                  {"method", method},
                  {"path", path},
                  {"status", r.status},
                  {"bytes_in", 0},
                  {"bytes_out", 0},
                  {"latency_ms", std::chrono::duration<double, std::milli>(Clock::now() - m_started).count()}});
  m_server.finished(false);
  m_stream.expires_after(k_stall_timeout);
  http::async_write(m_stream, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
    if (!ec && keep) {
      self->read_request();
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
  const std::string logged_path = redact_placeholders(target.substr(0, target.find('?')));
  const auto route = split_target(target);
  if (!route) {
    refuse(refusal(400, "bad_request", "the request target must be /NAME/path, NAME a proxy-only secret",
                   "OPENAI_BASE_URL=http://" + m_server.address() + "/openai/v1"),
           method, logged_path);
    return;
  }
  if (has_dot_segments(route->rest)) {
    refuse(refusal(400, "bad_request", "the path has dot segments or encoded slashes"), method, logged_path);
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
                                    &io = m_server.m_io]() mutable {
    if (weak.expired()) {
      return;
    }
    Resolution r;
    try {
      r = resolve(name, tokens);
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
    refuse(*r, method, redact_placeholders(m_route.rest));
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
    refuse(r, method, redact_placeholders(path));
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
    Transfer t(*this, grant);
    keep = t.run();
    const int status = t.status();
    line["host"] = grant->host;
    line["path"] = redact_placeholders(grant->base_path + m_route.rest);
    line["status"] = status;
    line["bytes_in"] = t.bytes_in();
    line["bytes_out"] = t.bytes_out();
    line["success"] = status > 0 && status < 400 && t.code().empty();
    if (!t.code().empty()) {
      line["details"] = t.code();
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
    asio::post(m_server.m_io, [self = shared_from_this()] { self->close(); });
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

Server::Server(config::Proxy cfg, asio::io_context& daemon_io, Resolve resolve, Fresh fresh, Audit audit)
  : m_cfg(std::move(cfg)), m_daemon_io(daemon_io), m_resolve(std::move(resolve)), m_fresh(std::move(fresh)),
    m_audit(std::move(audit)), m_acceptor(m_io)
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
      socket.set_option(tcp::no_delay(true), ec);
      auto c = std::make_shared<Connection>(*this, std::move(socket));
      m_connections.insert(c);
      c->read_request();
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
  return {{"enabled", true},
          {"listen", m_address},
          {"requests", m_requests.load()},
          {"errors", m_errors.load()},
          {"active", m_active.load()}};
}

} // namespace proxy
