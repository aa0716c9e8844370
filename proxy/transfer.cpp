#include "proxy/connection.hpp"

#include "net/curl.hpp"
#include "proxy/decode.hpp"
#include "proxy/fd_stream.hpp"
#include "proxy/rewrite.hpp"
#include "proxy/scrub.hpp"
#include "proxy/transfer_head.hpp"
#include "util/encoding.hpp"
#include "util/file.hpp"

#include <cstring>

namespace proxy {

namespace {

constexpr size_t k_flush_bytes = 64 * 1024; // response bytes held before a write

bool iequals(std::string_view a, std::string_view b)
{
  return beast::iequals(a, b);
}

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

// ---------------------------------------------------------------- Transfer

// One upstream request on a worker thread.
class Transfer
{
public:
  Transfer(Connection& c, std::shared_ptr<Grant> grant)
    : m_c(c), m_grant(std::move(grant)), m_req(c.m_parser->get()),
      m_io(c.m_stream.socket().native_handle(), m_grant->cancelled, c.m_server.m_stopping),
      m_scrub(m_grant->scrub_needles()), m_injection(m_grant->injection)
  {
    if (m_injection.kind == Injection::Kind::body) {
      m_inject_body.emplace(m_grant->placeholder, std::string(m_grant->value.view()));
    }
  }
  ~Transfer() { util::wipe(m_decoded); } // decoded, not yet scrubbed
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

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
  MultiReplacer m_scrub;
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
  HeaderList m_headers;
  bool m_head_sent = false;
  bool m_chunked = false;
  bool m_no_body = false;
  bool m_keep_alive = true;
  // A body in a coding we did not ask for: decoded here, then scrubbed.
  std::optional<Decoder> m_decoder;
  std::string m_decoded;
  // The response cannot be passed on (a coding we cannot decode): this is
  // sent in its place once curl has stopped.
  std::optional<Refusal> m_refused;
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
    case Injection::Kind::basic:
      add("Authorization: Basic " + util::base64_encode(secret, false, true));
      break;
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
  if (m_refused) {
    return false;
  }
  const RequestShape shape{m_req.version(), m_req.method() == http::verb::head, m_req.keep_alive()};
  ResponseHead head = response_head(m_headers, m_status, shape, m_grant->scrub_needles());
  if (head.refused) {
    m_refused = std::move(head.refused); // sent in its place once curl has stopped
    return false;
  }
  m_head_sent = true;
  if (head.decode) {
    m_decoder.emplace(*head.decode);
  }
  m_no_body = head.no_body;
  m_chunked = head.chunked;
  m_keep_alive = head.keep_alive;
  m_pending.append(head.bytes);
  return head.serialized;
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
  std::string_view data(buf, size * n);
  if (self.m_decoder) {
    self.m_decoded.clear();
    if (!self.m_decoder->feed(data, self.m_decoded)) {
      return 0; // the head is out: cutting the connection is the signal
    }
    data = self.m_decoded;
  }
  self.m_out.clear();
  self.m_scrub.feed(data, self.m_out);
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

  if (m_refused) {
    return send_error(*m_refused); // nothing of the upstream's response went out
  }
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
  if (m_decoder && !m_decoder->error().empty()) {
    m_code = "upstream_encoding"; // the head is out: the cut connection says it
    return false;
  }
  if (result != CURLE_OK) {
    const bool timeout = result == CURLE_OPERATION_TIMEDOUT;
    std::string detail = errbuf[0] ? errbuf : api.easy_strerror(result);
    detail = scrub(detail, m_grant->scrub_needles());
    return send_error(refusal(timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_error",
                              "upstream request failed: " + detail));
  }
  if (!send_head()) {
    return m_refused ? send_error(*m_refused) : false;
  }
  if (m_decoder && !m_decoder->finish()) {
    m_code = "upstream_encoding"; // the head is out: the cut connection says it
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

TransferResult forward(Connection& c, const std::shared_ptr<Grant>& grant)
{
  Transfer t(c, grant);
  TransferResult r;
  r.keep_alive = t.run();
  r.status = t.status();
  r.bytes_in = t.bytes_in();
  r.bytes_out = t.bytes_out();
  r.code = t.code();
  return r;
}

} // namespace proxy
