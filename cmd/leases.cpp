// `secrets leases`: the live leases (id, secret, client, binding, expiry),
// never values, over secrets.leases. What `revoke` without an id points to.

#include "cmd/command.hpp"

namespace cmd {

void add_leases_command(CLI::App& app, CommandAction& action)
{
  auto* leases = app.add_subcommand("leases", "list live leases: id, secret, client, bound process, expiry (never values)");
  leases->callback([&action] {
    action = [] {
      json result = call("secrets.leases");
      result["count"] = result["leases"].size();
      std::vector<Action> next;
      for (const auto& l : result["leases"]) {
        if (next.size() == 3) {
          break;
        }
        const std::string id = l.value("lease_id", "");
        next.push_back({"secrets revoke " + id, "end the lease of " + l.value("secret_name", "") + " held by "
                                                   + l.value("client_id", "")});
      }
      next.push_back({"secrets revoke --all", "KILLSWITCH: end every lease"});
      return Outcome{success_envelope("secrets leases", result, next)};
    };
  });
}

} // namespace cmd
