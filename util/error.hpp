#pragma once
// Typed errors for domain code (the ccache two-tier model: low-level helpers
// return or throw util::Error; the RPC layer maps Errc to JSON-RPC codes).
// Messages are lowercase, context first, and never carry a secret value.

#include <stdexcept>
#include <string>

namespace util {

enum class Errc {
  invalid_params,     // -32602
  secret_not_found,   // -32000
  lease_not_found,    // -32001
  lease_ended,        // -32002
  rotation_failed,    // -32003
  encryption,         // -32004
  decryption,         // -32005
  unauthorized,       // -32006
  already_exists,     // -32010
  killswitch_tripped, // -32011
  store_locked,       // -32012
  io,                 // -32603
  daemon_down,        // client side only: no daemon listens (CLI exit 3)
  internal,           // -32603
};

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
