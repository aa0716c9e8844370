#include "cmd/envelope.hpp"

#include "rpc/protocol.hpp"
#include "util/error.hpp"

#include <exception>

namespace cmd {

namespace {

json actions_json(const std::vector<Action>& actions)
{
  json out = json::array();
  for (const auto& a : actions) {
    out.push_back({{"command", a.command}, {"description", a.description}});
  }
  return out;
}

int exit_for_rpc(int code)
{
  switch (code) {
  case rpc::code::secret_not_found:
  case rpc::code::lease_not_found:
    return exit_code::not_found;
  case rpc::code::unauthorized:
  case rpc::code::killswitch_tripped:
    return exit_code::denied;
  case rpc::code::invalid_params:
    return exit_code::usage;
  default:
    return exit_code::error;
  }
}

} // namespace

json success_envelope(const std::string& command, json result, const std::vector<Action>& next_actions)
{
  return {{"ok", true},
          {"success", true},
          {"command", command},
          {"result", std::move(result)},
          {"next_actions", actions_json(next_actions)}};
}

json error_envelope(const std::string& command, const std::string& message, const std::string& code,
                    const std::string& fix, const std::vector<Action>& next_actions)
{
  return {{"ok", false},
          {"success", false},
          {"command", command},
          {"error", {{"message", message}, {"code", code}}},
          {"fix", fix.empty() ? "secrets --help" : fix},
          {"next_actions", actions_json(next_actions)}};
}

void print(const json& envelope, std::FILE* out)
{
  const std::string text = envelope.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

Failure failure_from_current_exception()
{
  try {
    throw;
  } catch (const rpc::RemoteError& e) {
    return {e.what(), rpc::name_for(e.code()), e.fix(), exit_for_rpc(e.code())};
  } catch (const util::Error& e) {
    if (e.code() == util::Errc::daemon_down) {
      return {e.what(), "daemon_not_running", e.fix(), exit_code::daemon_down};
    }
    const int code = rpc::code_for(e.code());
    return {e.what(), rpc::name_for(code), e.fix(), exit_for_rpc(code)};
  } catch (const std::exception& e) {
    return {e.what(), "internal_error", "secrets status", exit_code::error};
  }
}

} // namespace cmd
