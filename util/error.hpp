#pragma once
// Typed errors for domain code (the ccache two-tier model: low-level helpers
// return or throw util::Error; the RPC layer maps Errc to JSON-RPC codes).
// Messages are lowercase, context first, and never carry a secret value.

#include <stdexcept>
#include <string>

namespace util {

// The classes of failure util knows: generic ones, that any layer may throw.
// Each maps to one wire error of DESIGN.md section 4 (rpc::code_for) and from
// there to the CLI's exit status (cmd/envelope.cpp).
//
// A failure that belongs to one layer (a lease that ended, a tripped
// killswitch) is not listed here: that layer declares it in its own header
// with layer_errc() below, whose value is the failure's JSON-RPC code, so that
// rpc::code_for can put it on the wire without knowing the layer:
//   lease/table.hpp      lease::errc::not_found (-32001), lease::errc::ended (-32002)
//   daemon/errors.hpp    server::errc::rotation_failed (-32003),
//                        server::errc::killswitch_tripped (-32011)
//   store/identity.hpp   store::errc::locked (-32012)
// One type for all of them, so util::Error stays one exception and a caller
// tests `e.code() == lease::errc::ended` as before.
enum class Errc : int {
  invalid_params = 1, // -32602: bad input from a client or a file
  not_found,          // -32000 ("not_found"): the secret (or the thing) named does not exist
  encryption,         // -32004
  decryption,         // -32005
  unauthorized,       // -32006: a peer, a hook or a server of another uid
  already_exists,     // -32010
  io,                 // -32603: a system call failed
  daemon_down,        // client side only: no daemon listens (CLI exit 3); never on the wire
  internal,           // -32603: a bug or an impossible state. Keep it the last generic value.
};

// The JSON-RPC server-error range (-32099..-32000) that layers' own failures
// take their values from.
inline constexpr int k_layer_errc_min = -32099;
inline constexpr int k_layer_errc_max = -32000;

// A layer's own failure, valued as its JSON-RPC code; a code outside the
// server-error range does not compile.
consteval Errc layer_errc(int rpc_code)
{
  if (rpc_code < k_layer_errc_min || rpc_code > k_layer_errc_max) {
    throw "a layer's error code is a JSON-RPC server error, -32099..-32000";
  }
  return static_cast<Errc>(rpc_code);
}

// The JSON-RPC code of a layer's own failure; 0 for a generic one.
constexpr int layer_rpc_code(Errc errc)
{
  const int v = static_cast<int>(errc);
  return v >= k_layer_errc_min && v <= k_layer_errc_max ? v : 0;
}

class Error : public std::runtime_error
{
public:
  Error(Errc code, const std::string& message, std::string fix = {})
    : std::runtime_error(message), m_code(code), m_fix(std::move(fix))
  {
  }

  Errc code() const { return m_code; }
  // A command the user can run to fix the problem; may be empty.
  const std::string& fix() const { return m_fix; }

private:
  Errc m_code;
  std::string m_fix;
};

// "open /path: permission denied" from errno.
[[noreturn]] void throw_errno(const std::string& what, int err);
[[noreturn]] void throw_errno(const std::string& what);

} // namespace util
