// secrets import FILE.env [--prefix P] [--dry-run] [--force] [--keep-case]
// [--delete-source]: adds every KEY=value of a .env file to the store
// (issue 4). Nothing is written on our side: each value goes to the daemon in
// secrets.add and is wiped here. The plaintext file is the one copy left
// outside the store: --delete-source removes it once every value is in, and
// without it the next actions say to.
#include "cmd/command.hpp"
#include "cmd/dotenv.hpp"
#include "cmd/usage.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <unistd.h>

#include <map>
#include <set>

namespace cmd {

namespace {

struct ImportOptions
{
  std::string file;
  std::string prefix;
  bool dry_run = false;
  bool force = false;
  bool keep_case = false;
  bool delete_source = false;

  // This import's command line with `extra`, words shell-quoted: the fixes
  // keep the options that shape the names (--prefix, --keep-case).
  std::string again(const std::string& extra) const
  {
    std::string line = "secrets import " + shell_word(file);
    if (!prefix.empty()) {
      line += " --prefix " + shell_word(prefix);
    }
    if (keep_case) {
      line += " --keep-case";
    }
    return line + extra;
  }
};

std::string lowercase(std::string s)
{
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

bool valid_utf8(const std::string& s)
{
  try {
    std::string probe = json(s).dump();
    util::wipe(probe);
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

Outcome do_import(const ImportOptions& o)
{
  auto text = util::read_file_if_exists(o.file);
  if (!text) {
    return {error_envelope("secrets import", o.file + ": no such file", "not_found", "ls " + shell_word(o.file)),
            exit_code::not_found};
  }
  std::vector<DotenvEntry> entries;
  try {
    entries = parse_dotenv(*text);
    util::wipe(*text);
  } catch (const util::Error& e) {
    util::wipe(*text);
    return {error_envelope("secrets import", o.file + " " + e.what(), "invalid_params",
                           "fix the line in " + o.file + ", then: " + o.again("")),
            exit_code::error};
  }
  // The last definition of a key wins, as with `set -a; . FILE`.
  std::map<std::string, size_t> last;
  for (size_t i = 0; i < entries.size(); ++i) {
    last[entries[i].key] = i;
  }
  std::set<std::string> existing;
  if (o.dry_run) {
    const json result = call("secrets.list");
    for (const auto& s : result.value("secrets", json::array())) {
      existing.insert(s.value("name", ""));
    }
  }
  json imported = json::array();
  json skipped = json::array();
  for (size_t i = 0; i < entries.size(); ++i) {
    auto& e = entries[i];
    const std::string name = o.prefix + (o.keep_case ? e.key : lowercase(e.key));
    json info = {{"key", e.key}, {"name", name}, {"line", e.line}};
    auto skip = [&](const std::string& reason) {
      info["reason"] = reason;
      skipped.push_back(info);
      util::wipe(e.value);
    };
    if (last[e.key] != i) {
      skip("overridden by line " + std::to_string(entries[last[e.key]].line));
      continue;
    }
    if (e.value.empty()) {
      skip("empty value");
      continue;
    }
    if (!valid_utf8(e.value)) {
      skip("value is not valid UTF-8");
      continue;
    }
    if (o.dry_run) {
      if (existing.count(name) != 0 && !o.force) {
        skip("already present (use --force to replace)");
      } else {
        imported.push_back(info);
        util::wipe(e.value);
      }
      continue;
    }
    json params = {{"name", name}, {"value", e.value}, {"force", o.force}};
    util::wipe(e.value);
    try {
      const json result = call("secrets.add", params);
      info["replaced"] = result.value("replaced", false);
      imported.push_back(info);
    } catch (const rpc::RemoteError& err) {
      if (err.code() == rpc::code::already_exists) {
        skip("already present (use --force to replace)");
      } else if (err.code() == rpc::code::invalid_params) {
        skip(err.what());
      } else {
        util::wipe(params["value"].get_ref<std::string&>());
        throw;
      }
    } catch (...) {
      util::wipe(params["value"].get_ref<std::string&>());
      throw;
    }
    util::wipe(params["value"].get_ref<std::string&>());
  }
  json result = {{"file", o.file}, {"dry_run", o.dry_run}, {o.dry_run ? "would_import" : "imported", imported},
                 {"skipped", skipped}};
  // Only a file whose every value is now in the store goes: a line skipped
  // for another reason than an empty value or a later definition still holds
  // a value we do not have.
  size_t kept_back = 0;
  for (const auto& sk : skipped) {
    const std::string reason = sk.value("reason", "");
    kept_back += reason != "empty value" && !reason.starts_with("overridden by line") ? 1 : 0;
  }
  std::vector<Action> next;
  if (o.dry_run) {
    next.push_back({o.again(""), "import them"});
  } else if (o.delete_source && kept_back == 0) {
    if (::unlink(o.file.c_str()) != 0) {
      util::throw_errno("delete " + o.file + " after importing it");
    }
    result["source_deleted"] = true;
  } else {
    result["source_deleted"] = false;
    if (o.delete_source) {
      result["source_kept_because"] = std::to_string(kept_back) + " value(s) were not imported";
    }
  }
  next.push_back({"secrets list", "list secrets"});
  if (!skipped.empty() && !o.force) {
    next.push_back({o.again(" --force"), "replace secrets that are already present"});
  }
  if (!o.dry_run && result.value("source_deleted", false) == false && kept_back == 0) {
    next.push_back({"rm " + shell_word(o.file), "its values are in the store now: delete the plaintext copy"
                                                 " (or import with --delete-source)"});
  }
  return {success_envelope("secrets import", std::move(result), next)};
}

} // namespace

void add_import_command(CLI::App& app, CommandAction& action)
{
  static ImportOptions o;
  auto* import = app.add_subcommand("import", "add every KEY=value of a .env file to the store");
  import->add_option("file", o.file, "the .env file")->required();
  import->add_option("--prefix", o.prefix, "prepended to every secret name");
  import->add_flag("--dry-run", o.dry_run, "report what would be imported; change nothing");
  import->add_flag("--force", o.force, "replace secrets that already exist");
  import->add_flag("--keep-case", o.keep_case, "keep the keys' case (default: lowercase names)");
  import->add_flag("--delete-source", o.delete_source,
                   "delete the .env once every value is in the store (kept if any was not imported)");
  import->callback([&action] { action = [] { return do_import(o); }; });
}

} // namespace cmd
