// secrets env and cleanup (issue 4); import is cmd/import.cpp.
#include "cmd/command.hpp"
#include "cmd/dotenv.hpp"
#include "cmd/project.hpp"
#include "rpc/env_file.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <fcntl.h>
#include <string.h> // explicit_bzero
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

namespace cmd {

namespace {

namespace fs = std::filesystem;

struct EnvOptions
{
  bool force = false;
  std::string ttl;
  std::string output = ".env";
  std::string file;
  std::vector<std::string> secrets;
  std::string client_id;
};

struct CleanupOptions
{
  bool dry_run = false;
  std::string path = ".";
};

struct Taken
{
  std::string lease_id;
  std::string secret_name;
  std::string env_var;
  std::string expires_at;
  std::string value;
};

void revoke_quietly(const std::vector<Taken>& taken)
{
  for (const auto& t : taken) {
    try {
      call("secrets.revoke", {{"lease_id", t.lease_id}});
    } catch (...) {
      // best effort: the lease still ends at its TTL
    }
  }
}

// Creates `path` with mode 0600 and `content` (util::AtomicFile: a 0600 temp
// file in the same directory, fsync, then rename with --force, or link
// without, so that an existing file is never replaced, even one created
// since we looked).
void write_private_file(const std::string& path, const std::string& content, bool force)
{
  util::AtomicFile file(path, 0600);
  file.write(content);
  if (force) {
    file.commit();
    return;
  }
  try {
    file.commit_new();
  } catch (const util::Error& e) {
    if (e.code() == util::Errc::already_exists) {
      throw util::Error(util::Errc::already_exists, path + " already exists", "secrets env --force");
    }
    throw;
  }
}

std::string absolute_path(const std::string& path)
{
  std::string out = fs::absolute(fs::path(path)).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') {
    out.pop_back(); // "./" -> "/cwd", not "/cwd/"
  }
  return out;
}

Outcome do_env(const EnvOptions& o)
{
  const std::string path = absolute_path(o.output);
  struct stat st{};
  std::vector<std::string> previous;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!o.force) {
      return {error_envelope("secrets env", path + " already exists; not overwriting it", "already_exists",
                             "secrets env --force  # or: secrets env --output OTHER_PATH"),
              exit_code::error};
    }
    if (auto ids = rpc::env_file_leases(path)) {
      previous = std::move(*ids);
    }
  }
  const std::string dir = util::dirname_of(path);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return {error_envelope("secrets env", dir + ": no such directory for " + path, "invalid_params",
                           "mkdir -p " + dir),
            exit_code::usage};
  }
  const Project project = load_project(o.file, o.secrets);
  const std::string client_id = !o.client_id.empty()           ? o.client_id
                                : !project.client_id.empty() ? project.client_id
                                                               : std::string("secrets env");
  std::vector<Taken> taken;
  std::string content;
  try {
    for (const auto& ref : project.secrets) {
      // --ttl on the command line wins over a per-secret ttl in .secrets.json.
      const std::string ttl = !o.ttl.empty() ? o.ttl : ref.ttl;
      json result = call("secrets.lease", {{"secret_name", ref.name}, {"client_id", client_id}, {"ttl", ttl}});
      taken.push_back({result.value("lease_id", ""), ref.name, ref.env_var, result.value("expires_at", ""), ""});
      taken.back().value = result["value"].get<std::string>();
      util::wipe(result["value"].get_ref<std::string&>());
      if (taken.back().value.find('\0') != std::string::npos) {
        throw util::Error(util::Errc::invalid_params,
                          "secret " + ref.name + " holds a NUL byte, which an environment variable cannot",
                          "secrets exec --secret " + ref.name + " -- CMD  # or store it base64-encoded");
      }
    }
    content = std::string(rpc::k_env_file_header) + "\n";
    for (const auto& t : taken) {
      content += "# lease " + t.lease_id + " " + t.secret_name + " expires " + t.expires_at + "\n";
    }
    for (const auto& t : taken) {
      content += t.env_var + "=" + quote_env_value(t.value) + "\n";
    }
    for (auto& t : taken) {
      util::wipe(t.value);
    }
    write_private_file(path, content, o.force);
    util::wipe(content);
  } catch (...) {
    for (auto& t : taken) {
      util::wipe(t.value);
    }
    util::wipe(content);
    revoke_quietly(taken);
    throw;
  }
  json ids = json::array();
  json leases = json::array();
  for (const auto& t : taken) {
    ids.push_back(t.lease_id);
    leases.push_back(
      {{"lease_id", t.lease_id}, {"secret_name", t.secret_name}, {"env_var", t.env_var}, {"expires_at", t.expires_at}});
  }
  try {
    // The daemon deletes it later by walking the path without following any
    // link (rpc::delete_env_file), so it gets the path with links resolved.
    std::error_code canonical_ec;
    const auto real = fs::canonical(path, canonical_ec);
    call("secrets.registerFile", {{"path", canonical_ec ? path : real.string()}, {"lease_ids", ids}});
  } catch (...) {
    // A file the daemon would not delete must not outlive this command.
    ::unlink(path.c_str());
    revoke_quietly(taken);
    throw;
  }
  // The file we replaced held leases nobody reads any more.
  std::set<std::string> fresh(ids.begin(), ids.end());
  json revoked = json::array();
  for (const auto& id : previous) {
    if (fresh.count(id) == 0) {
      try {
        call("secrets.revoke", {{"lease_id", id}});
        revoked.push_back(id);
      } catch (...) {
        // already ended
      }
    }
  }
  json result = {{"path", path}, {"source", project.source}, {"leases", std::move(leases)}};
  if (!revoked.empty()) {
    result["revoked_previous"] = std::move(revoked);
  }
  return {success_envelope("secrets env", std::move(result),
                           {{"set -a; . " + path + "; set +a", "load the variables into a shell"},
                            {"secrets cleanup --path " + util::dirname_of(path), "remove env files whose leases ended"},
                            {"secrets revoke --all", "KILLSWITCH: revoke every lease (deletes the file)"}})};
}

// Looks at every regular file directly in the directory (not recursive): a
// file is ours only if its first line is the header, whatever its name.
Outcome do_cleanup(const CleanupOptions& o)
{
  const std::string dir = absolute_path(o.path);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return {error_envelope("secrets cleanup", dir + ": not a directory", "invalid_params",
                           "secrets cleanup --path DIR"),
            exit_code::usage};
  }
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (rpc::env_file_leases(entry.path().string())) {
      found.push_back(entry.path().string());
    }
  }
  if (ec) {
    return {error_envelope("secrets cleanup", "failed to list " + dir + ": " + ec.message(), "io_error",
                           "ls -ld " + dir),
            exit_code::error};
  }
  std::sort(found.begin(), found.end());
  // The daemon checks each file against the live leases, deletes it and audits that.
  json removed = json::array();
  json kept = json::array();
  for (const auto& p : found) {
    json r;
    try {
      r = call("secrets.removeEnvFile", {{"path", p}, {"dry_run", o.dry_run}});
    } catch (const rpc::RemoteError& e) {
      if (e.code() != rpc::code::invalid_params) {
        throw;
      }
      continue; // changed since we looked: no longer ours
    }
    if (r.value("removed", false) || (o.dry_run && r.value("reason", "") == "dry run")) {
      removed.push_back(p);
    } else {
      kept.push_back({{"path", p}, {"reason", r.value("reason", "")}, {"live_leases", r.value("live_leases", json::array())}});
    }
  }
  json result = {{"directory", dir}, {"dry_run", o.dry_run}, {o.dry_run ? "would_remove" : "removed", removed},
                 {"kept", std::move(kept)}};
  std::vector<Action> next;
  if (o.dry_run && !removed.empty()) {
    next.push_back({"secrets cleanup --path " + dir, "remove them"});
  }
  next.push_back({"secrets env", "write a fresh .env"});
  return {success_envelope("secrets cleanup", std::move(result), next)};
}

} // namespace

void add_env_commands(CLI::App& app, CommandAction& action)
{
  static EnvOptions env_o;
  static CleanupOptions cleanup_o;

  auto* env = app.add_subcommand("env", "lease the project's secrets into a 0600 .env the daemon deletes when they end");
  env->add_flag("--force", env_o.force, "overwrite an existing file");
  env->add_option("--ttl", env_o.ttl, "lease duration for every secret, e.g. 30m (default: .secrets.json, then config)");
  env->add_option("--output,-o", env_o.output, "the file to write (default .env)");
  env->add_option("--file", env_o.file, "the project file (default: .secrets.json from here upwards)");
  env->add_option("--secret", env_o.secrets, "NAME or NAME=ENV_VAR, repeatable; no .secrets.json is read");
  env->add_option("--client-id", env_o.client_id, "who holds the leases (audited)");
  env->callback([&action] { action = [] { return do_env(env_o); }; });

  auto* cleanup = app.add_subcommand("cleanup", "remove env files written by secrets env whose leases have ended");
  cleanup->add_flag("--dry-run", cleanup_o.dry_run, "list what would be removed; change nothing");
  cleanup->add_option("--path", cleanup_o.path, "the directory to look in (default: the current one; not recursive)");
  cleanup->callback([&action] { action = [] { return do_cleanup(cleanup_o); }; });
}

} // namespace cmd
