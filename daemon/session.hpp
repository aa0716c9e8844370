#pragma once
// One client connection: newline-delimited JSON-RPC requests in, replies out
// in request order. A reply whose audit line is not yet durable waits in the
// queue (group commit: many replies, one fdatasync). Requests may be
// pipelined. Lines over rpc::k_max_line get an error and close the
// connection; idle connections close after 60 s (watchers excepted).

#include "daemon/state.hpp"

#include <deque>
#include <memory>
#include <optional>

namespace server {

class Session : public std::enable_shared_from_this<Session>
{
public:
  Session(asio::local::stream_protocol::socket socket, State& state, const MethodTable& methods);
  void start();
  // Called on the io thread when audit lines up to `seq` are durable.
  void on_durable(uint64_t seq);
  // A watched lease ended: push a lease.ended notification.
  void notify(const json& message);
  void set_watching() { m_watching = true; }

private:
  struct Outgoing
  {
    uint64_t seq;
    std::string data;
    bool ready = true; // false while an async method works, or a stream has more pieces
    std::shared_ptr<ResultStream> stream = nullptr; // a streamed result: `data` is its next piece
  };

  void read_next();
  void on_line(std::string line);
  // Returns the reply, or null when an async or stream method holds its
  // place in m_queue. Called inside a State::RequestAudit.
  json dispatch(const json& request);
  // Runs one handler body inside the request's exception boundary; audits failures.
  json guarded(const json& id, const Method& method, const json& params, const std::function<json()>& body);
  // The audit line of a method that failed or was refused: its audit_action,
  // or `denied` (when `refused` and it has none), with the secret, lease and
  // client the params name.
  void audit_failure(const std::string& name, const Method& method, const json& params, const std::string& details,
                     bool refused);
  void enqueue(json reply, uint64_t seq, bool close_after = false);
  // Asks the stream of `slot` for its next piece, on a worker; the first
  // piece (`first_of_id` set) carries the reply's head, or becomes an error reply.
  void pull(Outgoing& slot, std::optional<json> first_of_id = std::nullopt);
  void flush();
  void arm_idle_timer();
  void close();

  asio::local::stream_protocol::socket m_socket;
  State& m_state;
  const MethodTable& m_methods;
  PeerCheck m_check; // decided once, on accept
  const Peer& m_peer = m_check.peer;
  asio::streambuf m_buffer;
  asio::steady_timer m_idle_timer;
  std::deque<Outgoing> m_queue;
  bool m_writing = false;
  bool m_reading_paused = false;
  bool m_close_after_flush = false;
  bool m_closed = false;
  bool m_watching = false;
  bool m_waiting_durable = false;
};

} // namespace server
