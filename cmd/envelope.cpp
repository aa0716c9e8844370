#include "cmd/envelope.hpp"

#include "rpc/protocol.hpp"
#include "util/error.hpp"
#include "util/paths.hpp"

#include <exception>
#include <filesystem>

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
  case rpc::code::locked:
    return exit_code::locked;
  case rpc::code::invalid_params:
    return exit_code::usage;
  default:
    return exit_code::error;
  }
}

} // namespace

Envelope success_envelope(const std::string& command, json result, const std::vector<Action>& next_actions)
{
  Envelope e;
  e["ok"] = true;
  e["success"] = true;
  e["command"] = command;
  e["result"] = Envelope(std::move(result));
  e["next_actions"] = Envelope(actions_json(next_actions));
  return e;
}

Envelope error_envelope(const std::string& command, const std::string& message, const std::string& code,
                    const std::string& fix, const std::vector<Action>& next_actions)
{
  Envelope e;
  e["ok"] = false;
  e["success"] = false;
  e["command"] = command;
  e["error"]["message"] = message;
  e["error"]["code"] = code;
  e["fix"] = fix.empty() ? "secrets --help" : fix;
  e["next_actions"] = Envelope(actions_json(next_actions));
  return e;
}

void print(const Envelope& envelope, std::FILE* out)
{
  const std::string text = envelope.dump(2, ' ', false, Envelope::error_handler_t::replace) + "\n";
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
      // With no store yet, `serve` would only say to run init: say it first.
      const auto paths = util::default_paths();
      std::error_code ec;
      const bool no_store = !std::filesystem::exists(paths.identity, ec) && !std::filesystem::exists(paths.secrets, ec);
      return {e.what(), "daemon_not_running", no_store ? "secrets init && secrets serve &" : e.fix(),
              exit_code::daemon_down};
    }
    const int code = rpc::code_for(e.code());
    return {e.what(), rpc::name_for(code), e.fix(), exit_for_rpc(code)};
  } catch (const std::exception& e) {
    return {e.what(), "internal_error", "secrets status", exit_code::error};
  }
}

} // namespace cmd
