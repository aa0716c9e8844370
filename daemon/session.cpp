#include "daemon/session.hpp"

#include "util/error.hpp"

#include <spdlog/spdlog.h>

#include <set>
#include <string.h> // explicit_bzero
#include <vector>
#include <sys/socket.h>

namespace server {

namespace {

constexpr auto k_idle_timeout = std::chrono::seconds{60};
constexpr size_t k_max_queued_replies = 64;

// json::parse that also reports the first key repeated within one object.
json parse_unique_keys(const std::string& line, std::string& duplicate)
{
  std::vector<std::set<std::string>> open; // the keys of each enclosing object
  return json::parse(line, [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open.pop_back();
    } else if (event == json::parse_event_t::key && duplicate.empty()
               && !open.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  });
}

} // namespace

Session::Session(asio::local::stream_protocol::socket socket, State& state, const MethodTable& methods)
  : m_socket(std::move(socket)), m_state(state), m_methods(methods), m_check(check_peer(m_socket.native_handle())),
    m_buffer(rpc::k_max_line + 1), m_idle_timer(state.io)
{
}

void Session::start()
{
  arm_idle_timer();
  read_next();
}

void Session::arm_idle_timer()
{
  if (m_watching) {
    m_idle_timer.cancel();
    return;
  }
  m_idle_timer.expires_after(k_idle_timeout);
  m_idle_timer.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
    if (auto s = self.lock(); s && !ec && !s->m_watching) {
      spdlog::debug("idle connection closed");
      s->close();
    }
  });
}

void Session::read_next()
{
  if (m_closed || m_close_after_flush) {
    return;
  }
  if (m_queue.size() >= k_max_queued_replies) {
    m_reading_paused = true; // resumed by flush() once replies drain
    return;
  }
  asio::async_read_until(
    m_socket, m_buffer, '\n', [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
      if (self->m_closed) {
        return;
      }
      if (ec == asio::error::not_found) {
        // The line outgrew rpc::k_max_line before its newline.
        self->enqueue(rpc::make_error(nullptr, rpc::code::invalid_request, "request too large: a line may be at most 1 MiB"),
                      0, true);
        return;
      }
      if (ec == asio::error::eof) {
        // The client half-closed after sending (`nc -N`, a pipe into socat):
        // every complete line before EOF still gets its reply, then we close.
        spdlog::debug("connection half-closed by the client");
        self->m_close_after_flush = true;
        self->flush();
        return;
      }
      if (ec) {
        spdlog::debug("connection closed: {}", ec.message());
        self->close(); // reset: the client went away
        return;
      }
      std::string line(asio::buffers_begin(self->m_buffer.data()),
                       asio::buffers_begin(self->m_buffer.data()) + static_cast<std::ptrdiff_t>(n) - 1);
      self->m_buffer.consume(n);
      self->arm_idle_timer();
      self->on_line(std::move(line));
      explicit_bzero(line.data(), line.size()); // an add carries a value
      self->read_next();
    });
}

void Session::on_line(std::string line)
{
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  if (line.find_first_not_of(" \t") == std::string::npos) {
    return; // blank keep-alive lines get no reply
  }
  struct WipeLine // every return path: an add's line carries a value
  {
    std::string& s;
    ~WipeLine() { explicit_bzero(s.data(), s.size()); }
  } wipe_line{line};
  json request;
  std::string duplicate;
  bool valid = line.find('\0') == std::string::npos; // nlohmann would stop reading at a NUL byte
  try {
    if (valid) {
      request = parse_unique_keys(line, duplicate);
    }
  } catch (const json::exception&) {
    valid = false;
  }
  if (!valid) {
    enqueue(rpc::make_error(nullptr, rpc::code::parse_error, "parse error: the line is not valid JSON",
                            "send one UTF-8 JSON-RPC 2.0 object per line"),
            0);
    return;
  }
  if (!duplicate.empty()) {
    // Parsers disagree on which of two equal keys wins: refuse to guess.
    enqueue(rpc::make_error(nullptr, rpc::code::invalid_request,
                            "invalid request: duplicate key \"" + duplicate.substr(0, 64) + "\" in an object",
                            "send each key once"),
            0);
    return;
  }
  uint64_t seq = 0; // the last audit line this request appended: its reply waits until it is durable
  json reply;
  // The one exception boundary: nothing a request does can stop the daemon.
  try {
    const State::RequestAudit scope(m_state, seq);
    reply = dispatch(request);
  } catch (const std::exception& e) {
    spdlog::error("internal error while handling a request: {}", e.what());
    reply = rpc::make_error(request.is_object() && request.contains("id") ? request["id"] : json(nullptr),
                            rpc::code::internal, "internal error");
  }
  const bool close_after = !m_check.allowed;
  if (reply.is_null()) {
    return; // an async method holds its place in m_queue
  }
  enqueue(std::move(reply), seq, close_after);
  explicit_bzero(line.data(), line.size());
}

json Session::dispatch(const json& request)
{
  if (!request.is_object()) {
    return rpc::make_error(nullptr, rpc::code::invalid_request, "invalid request: expected a JSON object");
  }
  json id = nullptr;
  if (const auto it = request.find("id"); it != request.end()) {
    if (!it->is_string() && !it->is_number() && !it->is_null()) {
      return rpc::make_error(nullptr, rpc::code::invalid_request, "invalid request: id must be a string or number");
    }
    id = *it;
  }
  const auto method_it = request.find("method");
  if (method_it == request.end() || !method_it->is_string()) {
    return rpc::make_error(id, rpc::code::invalid_request, "invalid request: method must be a string");
  }
  const std::string& name = method_it->get_ref<const std::string&>();
  if (const auto v = request.find("jsonrpc"); v != request.end() && *v != "2.0") {
    return rpc::make_error(id, rpc::code::invalid_request, "invalid request: jsonrpc must be \"2.0\"");
  }
  if (!m_check.allowed) {
    // Deny by default, before dispatch (watchman's peerIsOwner).
    m_state.audit({{"action", "denied"},
                   {"details", m_check.details + "; method " + name.substr(0, 64)},
                   {"success", false},
                   {"reason", m_check.reason}},
                  &m_peer);
    spdlog::warn("refused {} from pid {} uid {}: {}", name.substr(0, 64), m_peer.pid, m_peer.uid, m_check.details);
    return rpc::make_error(id, rpc::code::unauthorized,
                           m_check.reason == "namespace"
                             ? "unauthorized: the daemon serves only processes in its own user namespace"
                             : "unauthorized: the daemon serves only its own user");
  }
  const auto found = m_methods.find(name);
  if (found == m_methods.end()) {
    return rpc::make_error(id, rpc::code::method_not_found, "method not found: " + name, "secrets --help");
  }
  const Method& method = found->second;
  static const json empty = json::object();
  const auto params_it = request.find("params");
  const json& params = params_it == request.end() || params_it->is_null() ? empty : *params_it;
  if (!params.is_object()) {
    return rpc::make_error(id, rpc::code::invalid_params, "invalid params: params must be an object");
  }
  // The gates after the peer's, in their order; each refusal is audited.
  for (const auto& refused : {m_state.killswitch().refusal(method), m_state.lock_state().refusal(method)}) {
    if (refused) {
      audit_failure(name, method, params, refused->what(), true);
      return rpc::make_error(id, rpc::code_for(refused->code()), refused->what(), refused->fix());
    }
  }
  const Request request_of{m_peer, shared_from_this()};
  if (method.stream_handler) {
    std::shared_ptr<ResultStream> stream;
    json early = guarded(id, method, params, [&] {
      stream = method.stream_handler(m_state, request_of, params);
      return json();
    });
    if (!stream) {
      return early; // bad params, or a file that cannot be opened
    }
    // The first piece is read now; each later one only after the one before
    // it has been written (flush, pull), so one piece at most is held.
    m_queue.push_back({0, {}, false, std::move(stream)});
    pull(m_queue.back(), id);
    return nullptr;
  }
  if (method.async_handler) {
    m_queue.push_back({0, {}, false});
    Outgoing* slot = &m_queue.back(); // deque elements stay put until popped
    // The lines the handler appends before it returns; a reply given later
    // waits for them too.
    auto started_seq = std::make_shared<uint64_t>(0);
    Responder respond([self = shared_from_this(), slot, id, method = &method, params = params,
                       started_seq](std::function<json()> body, uint64_t after_seq) {
      uint64_t seq = std::max(after_seq, *started_seq);
      json reply;
      {
        const State::RequestAudit scope(self->m_state, seq);
        reply = self->guarded(id, *method, params, body); // the work's effects happen even if the client left
      }
      if (self->m_closed) {
        return; // close() dropped the queue, slot included
      }
      slot->data = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      slot->seq = seq;
      slot->ready = true;
      self->flush();
    });
    // Bad params throw before any work starts: answer them in the slot.
    bool threw = true;
    json early;
    {
      const State::RequestAudit scope(m_state, *started_seq);
      early = guarded(id, method, params, [&] {
        method.async_handler(m_state, request_of, params, respond);
        threw = false;
        return json();
      });
    }
    if (threw) {
      slot->data = early.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      slot->seq = *started_seq;
      slot->ready = true;
      flush();
    }
    return nullptr;
  }
  return guarded(id, method, params, [&] { return method.handler(m_state, request_of, params); });
}

json Session::guarded(const json& id, const Method& method, const json& params, const std::function<json()>& body)
{
  try {
    json result = body();
    if (method.reads_values) {
      m_state.note_value_handed_out(); // the lock's idle timer starts again
    }
    return rpc::make_result(id, std::move(result));
  } catch (const util::Error& e) {
    if (method.audit_action) {
      audit_failure({}, method, params, e.what(), false);
    }
    return rpc::make_error(id, rpc::code_for(e.code()), e.what(), e.fix());
  } catch (const std::exception& e) {
    spdlog::error("internal error in a request: {}", e.what());
    return rpc::make_error(id, rpc::code::internal, "internal error");
  }
}

void Session::audit_failure(const std::string& name, const Method& method, const json& params,
                            const std::string& details, bool refused)
{
  const bool own_action = method.audit_action != nullptr;
  json line = {{"action", own_action ? method.audit_action : "denied"},
               {"details", own_action || !refused ? details : name.substr(0, 64) + ": " + details},
               {"success", false}};
  for (const char* field : {"secret_name", "name", "lease_id", "client_id"}) {
    if (const auto it = params.find(field); it != params.end() && it->is_string()) {
      line[std::string(field) == "name" ? "secret_name" : field] = *it;
    }
  }
  m_state.audit(std::move(line), &m_peer);
}

void Session::enqueue(json reply, uint64_t seq, bool close_after)
{
  std::string data = reply.dump(-1, ' ', false, json::error_handler_t::replace);
  data.push_back('\n');
  if (auto* result = reply.contains("result") ? &reply["result"] : nullptr; result && result->contains("value")) {
    auto& value = (*result)["value"];
    if (value.is_string()) {
      auto& s = value.get_ref<std::string&>();
      explicit_bzero(s.data(), s.size());
    }
  }
  m_queue.push_back({seq, std::move(data)});
  if (close_after) {
    m_close_after_flush = true;
  }
  flush();
}

void Session::on_durable(uint64_t)
{
  m_waiting_durable = false;
  flush();
}

void Session::notify(const json& message)
{
  m_queue.push_back({0, message.dump() + "\n"});
  flush();
}

void Session::flush()
{
  if (m_writing || m_closed) {
    return;
  }
  if (m_queue.empty()) {
    if (m_close_after_flush) {
      close();
    } else if (m_reading_paused) {
      m_reading_paused = false;
      read_next();
    }
    return;
  }
  if (!m_queue.front().ready && m_queue.front().data.empty()) {
    return; // an async method has not answered yet, or a stream's next piece is being read
  }
  if (m_queue.front().seq > m_state.log.durable_seq()) {
    // Its audit line is not durable yet; on_durable() calls again.
    if (!m_waiting_durable) {
      m_waiting_durable = true;
      m_state.wait_for_durable(shared_from_this());
    }
    return;
  }
  m_writing = true;
  asio::async_write(m_socket, asio::buffer(m_queue.front().data),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                      auto& front = self->m_queue.front();
                      explicit_bzero(front.data.data(), front.data.size()); // a lease reply carries a value
                      self->m_writing = false;
                      if (!ec && !front.ready && !self->m_closed) {
                        // A piece of a streamed result: the slot stays, and the
                        // next piece is read now that this one is out.
                        front.data.clear();
                        self->arm_idle_timer(); // a long stream is not an idle connection
                        self->pull(front);
                        return;
                      }
                      self->m_queue.pop_front();
                      if (ec) {
                        spdlog::debug("write failed: {}", ec.message());
                        self->close();
                        return;
                      }
                      self->flush();
                    });
}

void Session::pull(Outgoing& slot, std::optional<json> first_of_id)
{
  asio::post(m_state.readers, [self = shared_from_this(), slot = &slot, stream = slot.stream,
                               id = std::move(first_of_id)] {
    std::string piece;
    bool failed = false;
    bool done = false;
    try {
      piece = stream->next();
      done = piece.empty();
      if (id) {
        // Nothing is sent before the first piece, so a failure to start is
        // still an ordinary error reply.
        piece = "{\"jsonrpc\":\"2.0\",\"id\":" + id->dump(-1, ' ', false, json::error_handler_t::replace)
                + ",\"result\":" + (done ? "null" : piece);
      }
    } catch (const util::Error& e) {
      failed = !id;
      if (id) {
        piece = rpc::make_error(*id, rpc::code_for(e.code()), e.what(), e.fix())
                  .dump(-1, ' ', false, json::error_handler_t::replace)
                + "\n";
        done = true;
      }
    } catch (const std::exception& e) {
      failed = !id;
      if (id) {
        piece = rpc::make_error(*id, rpc::code::internal, "internal error")
                  .dump(-1, ' ', false, json::error_handler_t::replace)
                + "\n";
        done = true;
      }
    }
    if (failed) {
      spdlog::warn("a streamed reply failed after it had started; closing its connection");
    }
    asio::post(self->m_state.io, [self, slot, piece = std::move(piece), failed, done]() mutable {
      if (self->m_closed) {
        return; // close() dropped the queue, slot included
      }
      if (failed) {
        self->close();
        return;
      }
      slot->data = std::move(piece);
      if (done) {
        if (slot->data.empty() || slot->data.back() != '\n') {
          slot->data += "}\n";
        }
        slot->ready = true;
      }
      self->flush();
    });
  });
}

void Session::close()
{
  if (m_closed) {
    return;
  }
  m_closed = true;
  boost::system::error_code ignored;
  m_idle_timer.cancel();
  m_socket.shutdown(asio::socket_base::shutdown_both, ignored);
  m_socket.close(ignored);
  for (auto& out : m_queue) {
    explicit_bzero(out.data.data(), out.data.size());
  }
  // A reply being written stays until its handler runs (aborted, or done):
  // Asio still holds its buffer, and the handler pops it. Dropping it here
  // made that pop hit an empty queue (a double free ASan caught when a client
  // hung up while its lease reply was in flight).
  m_queue.erase(m_writing && !m_queue.empty() ? std::next(m_queue.begin()) : m_queue.begin(), m_queue.end());
}

} // namespace server
