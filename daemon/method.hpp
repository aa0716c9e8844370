#pragma once
// The method table: each JSON-RPC method declares what it is, and the
// dispatcher (Session::dispatch) enforces what follows from that, in one
// place, for every method (watchman's command registry, Vault's request
// pipeline). A method declares:
// - its handler, one of three kinds: `handler` returns the result; an
//   `async_handler` starts slow work and answers later through a Responder;
//   a `stream_handler` returns a result produced in pieces;
// - its typed params: the handler takes a struct P with
//   `static P parse(const json&)` (built on daemon/params.hpp), called once by
//   with_params() before the handler runs; a bad field is -32602 naming it;
// - `audit_action`: audited with success=false when the method fails or a gate
//   refuses it (a refused method without one is audited as `denied`);
// - what it does with the store (`reads_values`, `mutates_store`) and in which
//   states it is served (`allowed_while_tripped`, `allowed_while_locked`).
//
// The dispatcher's gates, in this order, before the method's params are parsed:
//   1. the peer (decided once, on accept: daemon/peer.hpp);
//   2. the killswitch (KillswitchState::refusal, daemon/state.hpp);
//   3. the store being locked (LockState::refusal, daemon/lock.hpp; DESIGN.md
//      section 11).
// No handler checks a gate itself. Everything here runs on the io thread.

#include "daemon/peer.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace server {

using nlohmann::json;

class Session;
class State;

// Who asked, and on which connection. The params are not here: a handler
// gets them typed, parsed once (with_params).
struct Request
{
  const Peer& peer;
  std::shared_ptr<Session> session;
};

// The table's handlers take the params as sent; with_params turns a typed
// handler into one.
using Handler = std::function<json(State&, const Request&, const json& params)>;

// How an async method answers: `body` runs on the io thread and produces the
// result (or throws util::Error); the reply keeps its place in the
// connection's order, and leaves once the audit lines `body` appends, and
// line `after_seq` (one the work appended earlier, e.g. its outcome), are
// durable. Called exactly once.
class Responder
{
public:
  using Fn = std::function<void(std::function<json()> body, uint64_t after_seq)>;
  explicit Responder(Fn fn) : m_fn(std::move(fn)) {}
  void operator()(std::function<json()> body, uint64_t after_seq = 0) const { m_fn(std::move(body), after_seq); }

private:
  Fn m_fn;
};

// An async method's handler copies what it needs from the request and its
// params, starts its work, and answers through the Responder.
using AsyncHandler = std::function<void(State&, const Request&, const json& params, Responder)>;

// A result produced in pieces on a worker (State::readers): the session asks
// for the next piece only once the previous one is on the socket, so neither
// a 300 MB reply nor a slow client holds memory or a thread. Concatenated,
// the pieces are the result's JSON text (secrets.audit streams a whole log).
class ResultStream
{
public:
  virtual ~ResultStream() = default;
  // On a worker: the next piece; an empty string at the end. A throw after
  // the first piece closes the connection: the reply cannot be completed.
  virtual std::string next() = 0;
};
// On the io thread: opens what the stream will read (a throw is an ordinary
// error reply).
using StreamHandler = std::function<std::unique_ptr<ResultStream>(State&, const Request&, const json& params)>;

struct Method
{
  // Exactly one of the three is set (with_params makes them from typed handlers).
  Handler handler = nullptr;
  AsyncHandler async_handler = nullptr;
  StreamHandler stream_handler = nullptr;
  // On failure the dispatcher audits this action with success=false.
  const char* audit_action = nullptr;
  // Hands out or reads a secret's value (a lease; a hook gets the value on stdin).
  bool reads_values = false;
  // Changes a secret in secrets.age. The killswitch's own rotate and wipe
  // (revokeAll) are not declared here: it is served in every state.
  bool mutates_store = false;
  // Served while the killswitch is tripped (the heartbeat), running, or has
  // wiped the store. Deny by default: a method that grants or extends access
  // (lease, renew) stays false.
  bool allowed_while_tripped = false;
  // Served while the store is locked (DESIGN.md section 11: status, health,
  // audit, revoke, revokeAll, unlock, lock). Such a handler asks
  // State::store_open() before it touches the store.
  bool allowed_while_locked = false;
  // Starts the killswitch: refused while one is running (one at a time).
  bool starts_killswitch = false;
};

using MethodTable = std::map<std::string, Method, std::less<>>;

// One registration function per family (methods_*.cpp).
void add_secret_methods(MethodTable& table);
void add_lease_methods(MethodTable& table);
void add_audit_methods(MethodTable& table);
void add_status_methods(MethodTable& table);
void add_killswitch_methods(MethodTable& table);
void add_lock_methods(MethodTable& table);
// All of the above: the daemon's table.
inline MethodTable all_methods()
{
  MethodTable table;
  add_secret_methods(table);
  add_lease_methods(table);
  add_audit_methods(table);
  add_status_methods(table);
  add_killswitch_methods(table);
  add_lock_methods(table);
  return table;
}

// The params of a method that takes none (whatever is sent is ignored, as the
// Go daemon did).
struct NoParams
{
  static NoParams parse(const json&) { return {}; }
};

// A typed handler as the table holds it: P::parse(params), then the handler.
template <class P>
Handler with_params(json (*fn)(State&, const Request&, const P&))
{
  return [fn](State& s, const Request& r, const json& params) { return fn(s, r, P::parse(params)); };
}

template <class P>
AsyncHandler with_params(void (*fn)(State&, const Request&, const P&, Responder))
{
  return [fn](State& s, const Request& r, const json& params, Responder respond) {
    fn(s, r, P::parse(params), std::move(respond));
  };
}

template <class P>
StreamHandler with_params(std::unique_ptr<ResultStream> (*fn)(State&, const Request&, const P&))
{
  return [fn](State& s, const Request& r, const json& params) { return fn(s, r, P::parse(params)); };
}

} // namespace server
