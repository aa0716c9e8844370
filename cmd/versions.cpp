// `secrets versions NAME` and `secrets rollback NAME [--to N]`: the values a
// secret had before (numbers and dates; no value ever leaves the daemon here).

#include "cmd/command.hpp"

namespace cmd {

void add_version_commands(CLI::App& app, CommandAction& action)
{
  static struct
  {
    std::string name;
    int to = 1;
  } o;

  auto* versions = app.add_subcommand("versions", "list the values a secret had before (dates, never values)");
  versions->add_option("name", o.name, "secret name")->required();
  versions->callback([&action] {
    action = [] {
      json result = call("secrets.versions", {{"name", o.name}});
      std::vector<Action> next;
      if (!result["versions"].empty()) {
        next.push_back({"secrets rollback " + o.name, "restore the previous value (version 1)"});
        if (result["versions"].size() > 1) {
          next.push_back({"secrets rollback " + o.name + " --to 2", "restore an older one"});
        }
      }
      next.push_back({"secrets audit --tail 20", "see what changed it"});
      return Outcome{success_envelope("secrets versions", result, next)};
    };
  });

  auto* rollback = app.add_subcommand("rollback", "restore an earlier value of a secret (default: the previous one)");
  rollback->add_option("name", o.name, "secret name")->required();
  rollback->add_option("--to", o.to, "the version to restore, as `secrets versions` numbers them (default 1)");
  rollback->callback([&action] {
    action = []() -> Outcome {
      if (o.to < 1) {
        return {error_envelope("secrets rollback", "--to takes a version number, 1 or more", "usage",
                               "secrets versions " + o.name + "  # lists the numbers"),
                exit_code::usage};
      }
      json result = call("secrets.rollback", {{"name", o.name}, {"to", o.to}});
      return Outcome{success_envelope("secrets rollback", result,
                                      {{"secrets versions " + o.name, "the value it replaced is now version 1"},
                                       {"secrets lease " + o.name, "lease the restored value"}})};
    };
  });
}

} // namespace cmd
