#pragma once
// JSON-RPC 2.0 framing and the error codes of DESIGN.md section 4, shared by
// the daemon and the clients. One object per line, ended by '\n'.

#include "util/error.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace rpc {

using nlohmann::json;

constexpr size_t k_max_line = 1024 * 1024; // a longer line is refused and the connection closed

namespace code {
constexpr int parse_error = -32700;
constexpr int invalid_request = -32600;
constexpr int method_not_found = -32601;
constexpr int invalid_params = -32602;
constexpr int internal = -32603;
constexpr int secret_not_found = -32000;
constexpr int lease_not_found = -32001;
constexpr int lease_ended = -32002;
constexpr int rotation_failed = -32003;
constexpr int encryption = -32004;
constexpr int decryption = -32005;
constexpr int unauthorized = -32006;
constexpr int already_exists = -32010;
constexpr int killswitch_tripped = -32011;
constexpr int locked = -32012;
} // namespace code

int code_for(util::Errc errc);
// The short machine name in error.data.code ("not_found", "invalid_params", ...).
const char* name_for(int code);

json make_result(const json& id, json result);
json make_error(const json& id, int code, const std::string& message, const std::string& fix = {});

// An error reply from the daemon, as the client sees it.
class RemoteError : public std::runtime_error
{
public:
  RemoteError(int code, const std::string& message, std::string fix)
    : std::runtime_error(message), m_code(code), m_fix(std::move(fix))
  {
  }
  int code() const { return m_code; }
  const std::string& fix() const { return m_fix; }

private:
  int m_code;
  std::string m_fix;
};

} // namespace rpc
