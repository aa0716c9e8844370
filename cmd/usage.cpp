#include "cmd/usage.hpp"

#include "cmd/cli_model.hpp"

#include "config/hooks.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace cmd {

namespace {

// The command a parse stopped in: "secrets", "secrets lease", "secrets hook allow".
const CLI::App* deepest(const CLI::App& app, std::string& name)
{
  name = "secrets";
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) {
    at = at->get_subcommands().front();
    name += " " + at->get_name();
  }
  return at;
}

std::vector<std::string> command_names(const CLI::App& app)
{
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
    out.push_back(sub->get_name());
    for (const auto& alias : sub->get_aliases()) {
      out.push_back(alias);
    }
  }
  return out;
}

// "--ttl", "-o" for `at` and the commands above it (CLI11 lets an option of a
// parent follow its subcommand).
std::vector<std::string> option_names(const CLI::App* at)
{
  std::vector<std::string> out{"--json"}; // taken by run() before CLI11 sees it
  for (; at != nullptr; at = at->get_parent()) {
    for (const CLI::Option* o : at->get_options()) {
      if (o->get_positional()) {
        continue;
      }
      for (const auto& l : o->get_lnames()) {
        out.push_back("--" + l);
      }
    }
  }
  return out;
}

// `secrets ARGS...` as a line a user can paste: every word shell-quoted
// where it needs to be.
std::string command_line(const std::vector<std::string>& args)
{
  std::string out = "secrets";
  for (const auto& arg : args) {
    out += " " + shell_word(arg);
  }
  return out;
}

// The command line as typed, with `args[index]` replaced: the fix.
std::string corrected(std::vector<std::string> args, size_t index, const std::string& replacement)
{
  args.at(index) = replacement;
  return command_line(args);
}

// The command list of bare `secrets`: the visible leaves of the CLI11 tree
// (cmd/cli_model.hpp), so a command added there is listed here too.
void list_commands(CLI::App& app, json& out)
{
  for (const Leaf& leaf : leaf_commands(app)) {
    out.push_back({{"usage", leaf.usage}, {"description", leaf.description}});
  }
}

} // namespace

std::string shell_word(const std::string& word)
{
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
  });
  return plain ? word : config::shell_quote(word);
}

size_t edit_distance(std::string_view a, std::string_view b)
{
  // Optimal string alignment: Levenshtein plus the swap of two neighbours
  // ("tll" -> "ttl" is one edit, as a typist makes it).
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates)
{
  std::string best;
  size_t best_distance = 3;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance && d < word.size()) {
      best = c;
      best_distance = d;
    }
  }
  if (best.empty() && word.size() >= 3) {
    for (const auto& c : candidates) {
      if (c.size() > word.size() && c.starts_with(word)) {
        return c;
      }
    }
  }
  return best;
}

Envelope usage_error(const CLI::App& app, const CLI::ParseError& e, const std::vector<std::string>& typed)
{
  std::string command;
  const CLI::App* at = deepest(app, command);
  const std::string help = command + " --help";
  // CLI11's message names the extras last-first; the fix follows the order typed.
  const auto extras_list = app.remaining(true);
  const std::set<std::string> extras(extras_list.begin(), extras_list.end());
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    for (size_t i = 0; i < typed.size(); ++i) {
      const std::string& word = typed[i];
      if (!extras.contains(word)) {
        continue;
      }
      if (word.starts_with("-")) {
        const std::string name = word.substr(0, word.find('='));
        const std::string guess = closest(name, option_names(at));
        if (guess.empty()) {
          return error_envelope(command, "unknown option " + name + " for " + command, "usage", help);
        }
        return error_envelope(command, "unknown option " + name + " for " + command + "; did you mean " + guess + "?",
                              "usage", corrected(typed, i, guess + word.substr(name.size())));
      }
      if (at == &app) {
        const std::string guess = closest(word, command_names(app));
        if (guess.empty()) {
          return error_envelope(command, "unknown command \"" + word + "\"", "usage", "secrets help");
        }
        return error_envelope(command, "unknown command \"" + word + "\"; did you mean \"" + guess + "\"?", "usage",
                              corrected(typed, i, guess));
      }
      return error_envelope(command, "unexpected argument \"" + word + "\" for " + command, "usage", help);
    }
  }
  if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr) {
    // CLI11 says "Could not convert: --tail = abc".
    const std::string what = e.what();
    const auto colon = what.find(": ");
    const auto equals = what.find(" = ");
    if (colon != std::string::npos && equals != std::string::npos && equals > colon) {
      const std::string option = what.substr(colon + 2, equals - colon - 2);
      const std::string value = what.substr(equals + 3);
      const CLI::Option* o = at->get_option_no_throw(option);
      const std::string expected = o != nullptr && o->get_type_name() == "INT" ? "a whole number" : o != nullptr ? o->get_type_name() : "another value";
      return error_envelope(command, "invalid value \"" + value + "\" for " + option + ": expected " + expected,
                            "usage", help);
    }
  }
  return error_envelope(command, e.what(), "usage", help);
}

Envelope chained_commands_error(const CLI::App& app, const std::vector<std::string>& typed)
{
  const auto subs = app.get_subcommands();
  if (subs.size() < 2) {
    return nullptr;
  }
  const std::string first = subs[0]->get_name();
  const std::string second = subs[1]->get_name();
  if (first == "exec") {
    // The word that started the second command is where `--` belongs.
    for (size_t i = 1; i < typed.size(); ++i) {
      if (typed[i] == second) {
        std::vector<std::string> fixed(typed.begin(), typed.begin() + static_cast<std::ptrdiff_t>(i));
        fixed.push_back("--");
        fixed.insert(fixed.end(), typed.begin() + static_cast<std::ptrdiff_t>(i), typed.end());
        return error_envelope("secrets exec",
                              "\"" + second + "\" was read as a command of secrets, not the one to run: put -- before the command",
                              "usage", command_line(fixed));
      }
    }
  }
  return error_envelope("secrets " + first, "one command at a time: got " + first + " and " + second, "usage",
                        "secrets " + first + " --help");
}

Envelope command_tree(CLI::App& app)
{
  json commands = json::array();
  list_commands(app, commands);
  return success_envelope("secrets",
                          {{"description", "agent-secrets: time-bounded leases on age-encrypted secrets"},
                           {"version", AGENT_SECRETS_VERSION},
                           {"commands", std::move(commands)}},
                          {{"secrets status", "check the daemon"}, {"secrets list", "list secrets"}});
}

std::string short_help(const CLI::App& app)
{
  std::ostringstream out;
  out << "agent-secrets: time-bounded leases on age-encrypted secrets, for AI agents\n\n"
      << "usage: secrets COMMAND [ARGS]...\n\n";
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
    std::string name = sub->get_name();
    name.resize(std::max<size_t>(name.size(), 18), ' ');
    out << "  " << name << sub->get_description() << "\n";
  }
  out << "\nfirst steps:\n"
      << "  secrets init && secrets serve &\n"
      << "  printf %s \"$KEY\" | secrets add api_key\n"
      << "  export API_KEY=$(secrets lease api_key --ttl 30m --client-id my-agent)\n"
      << "  secrets revoke --all              # the killswitch\n\n"
      << "secrets help COMMAND (or secrets COMMAND --help) for its options;\n"
      << "secrets --json for the command tree as a JSON envelope, for agents.\n";
  return out.str();
}

} // namespace cmd
