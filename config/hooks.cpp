#include "config/hooks.hpp"

#include "util/error.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>
#include <vector>

namespace config {

namespace {

using nlohmann::json;
using util::Errc;

constexpr const char* k_file_name = "hooks.json";

std::string mode_text(mode_t mode)
{
  char text[8];
  std::snprintf(text, sizeof(text), "%03o", static_cast<unsigned>(mode & 0777));
  return text;
}

// Owner and mode of an opened file or directory: the checks apply to what was
// opened, not to whatever the path names a moment later.
void check_owner_and_mode(const struct stat& st, const std::string& path, bool is_dir)
{
  if (st.st_uid != ::geteuid()) {
    throw util::Error(Errc::unauthorized,
                      path + " is owned by uid " + std::to_string(st.st_uid) + ", not by us (uid "
                        + std::to_string(::geteuid()) + "); no hook runs from it",
                      "chown " + std::to_string(::geteuid()) + " " + path);
  }
  if ((st.st_mode & 077) != 0) {
    throw util::Error(Errc::unauthorized,
                      path + " is accessible by group or others (mode " + mode_text(st.st_mode)
                        + "); no hook runs from it",
                      std::string("chmod ") + (is_dir ? "700 " : "600 ") + path);
  }
}

util::UniqueFd open_home(const std::string& home)
{
  util::UniqueFd fd(::open(home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    util::throw_errno("failed to open the home directory " + home);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    util::throw_errno("failed to stat " + home);
  }
  check_owner_and_mode(st, home, true);
  return fd;
}

// The text of hooks.json under the opened home, or nullopt when there is none.
std::optional<std::string> read_hooks_file(int home_fd, const std::string& path)
{
  // O_NONBLOCK: a FIFO planted as hooks.json must not block the open.
  util::UniqueFd fd(::openat(home_fd, k_file_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    if (errno == ELOOP) {
      throw util::Error(Errc::unauthorized, path + " is a symlink; no hook runs from it",
                        "rm " + path + " && secrets hook allow NAME 'COMMAND'");
    }
    util::throw_errno("failed to open " + path);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    util::throw_errno("failed to stat " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    throw util::Error(Errc::unauthorized, path + " is not a regular file; no hook runs from it",
                      "rm " + path + " && secrets hook allow NAME 'COMMAND'");
  }
  check_owner_and_mode(st, path, false);
  auto text = util::read_fd(fd.get(), k_max_hooks_file, path);
  if (!text) {
    throw util::Error(Errc::invalid_params,
                      path + " is larger than " + std::to_string(k_max_hooks_file / 1024) + " KiB",
                      "secrets hook list, then secrets hook remove NAME");
  }
  return text;
}

[[noreturn]] void invalid(const std::string& path, const std::string& message)
{
  throw util::Error(Errc::invalid_params, path + ": " + message, "edit " + path);
}

json parse_strict(std::string_view text, const std::string& path)
{
  // nlohmann keeps the last of duplicate keys; two entries for one secret
  // would let the file say one thing to a reader and another to us.
  std::vector<std::set<std::string>> seen;
  const auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
    case json::parse_event_t::array_start:
      seen.emplace_back();
      break;
    case json::parse_event_t::object_end:
    case json::parse_event_t::array_end:
      seen.pop_back();
      break;
    case json::parse_event_t::key:
      if (!seen.back().insert(parsed.get<std::string>()).second) {
        invalid(path, "duplicate key " + parsed.dump());
      }
      break;
    case json::parse_event_t::value:
      break;
    }
    return true;
  };
  try {
    return json::parse(text, on_event);
  } catch (const json::parse_error& e) {
    invalid(path, std::string("invalid JSON: ") + e.what());
  } catch (const json::out_of_range&) {
    invalid(path, "invalid JSON (a number is out of range)");
  }
}

void write_hooks(const std::string& path, const Hooks& hooks)
{
  util::AtomicFile file(path, 0600);
  file.write(hooks_to_text(hooks));
  file.commit();
}

// Runs `change` on the current allowlist while holding the home's lock, and
// writes the result back if `change` says so.
template<typename Change>
auto update(const util::Paths& paths, Change change)
{
  util::ensure_private_dir(paths.home);
  const auto home = open_home(paths.home);
  while (::flock(home.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      util::throw_errno("failed to lock " + paths.home);
    }
  }
  const std::string path = hooks_path(paths);
  const auto text = read_hooks_file(home.get(), path);
  Hooks hooks = text ? parse_hooks(*text, path) : Hooks{};
  const auto result = change(hooks);
  if (result) {
    write_hooks(path, hooks);
  }
  return result; // the lock goes with the descriptor
}

void check_entry(const std::string& name, const std::string& command)
{
  if (name.empty()) {
    throw util::Error(Errc::invalid_params, "a hook needs the name of its secret", "secrets hook allow NAME 'COMMAND'");
  }
  if (command.empty()) {
    throw util::Error(Errc::invalid_params, "the hook command for " + name + " is empty",
                      "secrets hook allow " + name + " 'COMMAND'");
  }
}

} // namespace

const std::string* Hooks::find(const std::string& name) const
{
  const auto it = commands.find(name);
  return it == commands.end() ? nullptr : &it->second;
}

std::string hooks_path(const util::Paths& paths)
{
  return paths.home + "/" + k_file_name;
}

Hooks parse_hooks(std::string_view text, const std::string& source_path)
{
  const json root = parse_strict(text, source_path);
  if (!root.is_object()) {
    invalid(source_path, "the top level must be an object");
  }
  for (const auto& [key, value] : root.items()) {
    if (key != "version" && key != "hooks") {
      invalid(source_path, "unknown key \"" + key + "\" (known: version, hooks)");
    }
  }
  const auto version = root.find("version");
  if (version == root.end() || !version->is_number_integer() || version->get<int64_t>() != 1) {
    invalid(source_path, "\"version\" must be 1");
  }
  Hooks hooks;
  const auto list = root.find("hooks");
  if (list == root.end()) {
    return hooks;
  }
  if (!list->is_object()) {
    invalid(source_path, "\"hooks\" must be an object of secret name to command");
  }
  for (const auto& [name, command] : list->items()) {
    if (name.empty()) {
      invalid(source_path, "a hook has an empty secret name");
    }
    if (!command.is_string() || command.get_ref<const std::string&>().empty()) {
      invalid(source_path, "the hook of \"" + name + "\" must be a non-empty string");
    }
    hooks.commands.emplace(name, command.get<std::string>());
  }
  return hooks;
}

std::string hooks_to_text(const Hooks& hooks)
{
  nlohmann::ordered_json root;
  root["version"] = 1;
  root["hooks"] = nlohmann::ordered_json::object();
  for (const auto& [name, command] : hooks.commands) {
    root["hooks"][name] = command;
  }
  return root.dump(2) + "\n";
}

Hooks load_hooks(const util::Paths& paths)
{
  const auto home = open_home(paths.home);
  const std::string path = hooks_path(paths);
  const auto text = read_hooks_file(home.get(), path);
  return text ? parse_hooks(*text, path) : Hooks{};
}

std::optional<std::string> allow_hook(const util::Paths& paths, const std::string& name, const std::string& command)
{
  check_entry(name, command);
  std::optional<std::string> replaced;
  update(paths, [&](Hooks& hooks) {
    auto [it, inserted] = hooks.commands.try_emplace(name, command);
    if (!inserted) {
      replaced = it->second;
      it->second = command;
    }
    return true;
  });
  return replaced;
}

std::optional<std::string> remove_hook(const util::Paths& paths, const std::string& name)
{
  std::optional<std::string> removed;
  update(paths, [&](Hooks& hooks) {
    const auto it = hooks.commands.find(name);
    if (it == hooks.commands.end()) {
      return false;
    }
    removed = it->second;
    hooks.commands.erase(it);
    return true;
  });
  return removed;
}

std::string shell_quote(const std::string& command)
{
  std::string out = "'";
  for (const char c : command) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

} // namespace config
