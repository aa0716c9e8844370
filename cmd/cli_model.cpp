#include "cmd/cli_model.hpp"

#include <cctype>

namespace cmd {

namespace {

// Positionals and option values are upper case in usage lines: "--ttl TTL".
std::string placeholder(std::string name)
{
  for (char& ch : name) {
    ch = ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return name;
}

// " NAME [--ttl TTL] [--secret SECRET]... -- COMMAND...": positionals are
// upper case, optional ones in brackets; a positional that takes several
// words comes last, after --.
std::string usage_of(const CLI::App& app)
{
  std::string usage;
  std::string rest;
  const auto add = [&usage](const std::string& word) { usage += " " + word; };
  for (const CLI::Option* o : app.get_options()) {
    if (!o->get_positional() || !visible(o->get_group())) {
      continue;
    }
    const std::string name = placeholder(o->get_name(true, false));
    if (o->get_expected_max() > 1) {
      rest = "-- " + name + "...";
    } else {
      add(o->get_required() ? name : "[" + name + "]");
    }
  }
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_positional() || !visible(o->get_group()) || o == app.get_help_ptr()) {
      continue;
    }
    const std::string flag =
      o->get_lnames().empty() ? "-" + o->get_snames().front() : "--" + o->get_lnames().front();
    std::string word = flag;
    if (o->get_expected_max() > 0) {
      word += " " + placeholder(o->get_lnames().empty() ? o->get_snames().front() : o->get_lnames().front());
    }
    const bool repeatable = o->get_expected_max() > 1; // a vector: the flag may be given again
    add(o->get_required() ? word : "[" + word + "]" + (repeatable ? "..." : ""));
  }
  if (!rest.empty()) {
    add(rest);
  }
  return usage;
}

std::vector<CLI::App*> visible_subcommands(CLI::App& app)
{
  std::vector<CLI::App*> out;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (visible(sub->get_group())) {
      out.push_back(sub);
    }
  }
  return out;
}

} // namespace

bool visible(const std::string& group)
{
  return !group.empty();
}

std::vector<Opt> options_of(const CLI::App& app)
{
  std::vector<Opt> out;
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_positional() || !visible(o->get_group())) {
      continue;
    }
    Opt opt;
    for (const auto& l : o->get_lnames()) {
      opt.names.push_back("--" + l);
    }
    for (const auto& s : o->get_snames()) {
      opt.names.push_back("-" + s);
    }
    opt.description = o->get_description();
    if (o->get_expected_max() > 0) {
      const std::string& n = o->get_lnames().empty() ? o->get_snames().front() : o->get_lnames().front();
      const bool path = n == "file" || n == "output" || n == "path";
      opt.value = path ? Value::file : Value::any;
      opt.placeholder = placeholder(n);
    }
    out.push_back(std::move(opt));
  }
  return out;
}

std::vector<Cmd> command_model(CLI::App& app)
{
  std::vector<Cmd> out;
  for (CLI::App* sub : visible_subcommands(app)) {
    Cmd c;
    c.names.push_back(sub->get_name());
    for (const auto& a : sub->get_aliases()) {
      c.names.push_back(a);
    }
    c.description = sub->get_description();
    c.options = options_of(*sub);
    for (const CLI::Option* o : sub->get_options()) {
      if (o->get_positional()) {
        const std::string& p = o->get_name(true, false);
        if (p == "name" || p == "file" || p == "command") {
          c.positional = p;
        }
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Leaf> leaf_commands(CLI::App& app, const std::string& prefix)
{
  std::vector<Leaf> out;
  for (CLI::App* sub : visible_subcommands(app)) {
    const std::string path = prefix + " " + sub->get_name();
    if (!sub->get_subcommands([](CLI::App*) { return true; }).empty()) {
      auto nested = leaf_commands(*sub, path);
      out.insert(out.end(), std::make_move_iterator(nested.begin()), std::make_move_iterator(nested.end()));
      continue;
    }
    Leaf leaf;
    leaf.path = path;
    leaf.aliases = sub->get_aliases();
    leaf.usage = path + usage_of(*sub);
    leaf.description = sub->get_description();
    for (const CLI::Option* o : sub->get_options()) {
      if (o->get_positional() && visible(o->get_group())) {
        leaf.arguments.push_back({placeholder(o->get_name(true, false)), o->get_description()});
      }
    }
    for (auto& opt : options_of(*sub)) {
      if (std::find(opt.names.begin(), opt.names.end(), "--help") == opt.names.end()) {
        leaf.options.push_back(std::move(opt));
      }
    }
    out.push_back(std::move(leaf));
  }
  return out;
}

} // namespace cmd
