#include "rpc/protocol.hpp"

namespace rpc {

int code_for(util::Errc errc)
{
  // A layer's own failure (lease::errc, server::errc) is valued as its code.
  if (const int layer = util::layer_rpc_code(errc); layer != 0) {
    return layer;
  }
  switch (errc) {
  case util::Errc::invalid_params:
    return code::invalid_params;
  case util::Errc::not_found:
    return code::secret_not_found;
  case util::Errc::encryption:
    return code::encryption;
  case util::Errc::decryption:
    return code::decryption;
  case util::Errc::unauthorized:
    return code::unauthorized;
  case util::Errc::already_exists:
    return code::already_exists;
  default: // io, daemon_down, internal
    break;
  }
  return code::internal;
}

const char* name_for(int c)
{
  switch (c) {
  case code::parse_error:
    return "parse_error";
  case code::invalid_request:
    return "invalid_request";
  case code::method_not_found:
    return "method_not_found";
  case code::invalid_params:
    return "invalid_params";
  case code::secret_not_found:
    return "not_found";
  case code::lease_not_found:
    return "lease_not_found";
  case code::lease_ended:
    return "lease_ended";
  case code::rotation_failed:
    return "rotation_failed";
  case code::encryption:
    return "encryption_failed";
  case code::decryption:
    return "decryption_failed";
  case code::unauthorized:
    return "unauthorized";
  case code::already_exists:
    return "already_exists";
  case code::killswitch_tripped:
    return "killswitch_tripped";
  case code::locked:
    return "locked";
  default:
    return "internal_error";
  }
}

json make_result(const json& id, json result)
{
  return json{{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
}

json make_error(const json& id, int c, const std::string& message, const std::string& fix)
{
  json data = {{"code", name_for(c)}};
  if (!fix.empty()) {
    data["fix"] = fix;
  }
  return json{{"jsonrpc", "2.0"}, {"error", {{"code", c}, {"message", message}, {"data", data}}}, {"id", id}};
}

} // namespace rpc
