#include "rotation/cgroup.hpp"

#include "util/file.hpp"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <sstream>
#include <vector>

namespace rotation {

namespace {

// Unique among the hooks of every daemon on the machine: the pid, then a count.
std::atomic<unsigned long> g_next_hook{0};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& field)
{
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string digits = field.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string::npos) {
        out += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::vector<std::string> split(const std::string& line)
{
  std::vector<std::string> fields;
  std::istringstream in(line);
  for (std::string f; in >> f;) {
    fields.push_back(f);
  }
  return fields;
}

} // namespace

std::string own_cgroup_dir()
{
  std::optional<std::string> cgroups;
  std::optional<std::string> mounts;
  try {
    cgroups = util::read_file_if_exists("/proc/self/cgroup");
    mounts = util::read_file_if_exists("/proc/self/mountinfo");
  } catch (const std::exception&) {
    return {};
  }
  if (!cgroups || !mounts) {
    return {};
  }
  std::string own; // the path in the v2 hierarchy, "0::/a/b"
  std::istringstream cg(*cgroups);
  for (std::string line; std::getline(cg, line);) {
    if (line.starts_with("0::")) {
      own = line.substr(3);
    }
  }
  if (own.empty() || own.ends_with(" (deleted)")) {
    return {};
  }
  std::istringstream mi(*mounts);
  for (std::string line; std::getline(mi, line);) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    const auto fields = split(line);
    size_t dash = 0;
    while (dash < fields.size() && fields[dash] != "-") {
      ++dash;
    }
    if (dash < 5 || dash + 1 >= fields.size() || fields[dash + 1] != "cgroup2") {
      continue;
    }
    const std::string root = unescape_mountinfo(fields[3]);
    const std::string mount_point = unescape_mountinfo(fields[4]);
    // A mount of a subtree shows only what lies below its root.
    if (root == "/") {
      return own == "/" ? mount_point : mount_point + own;
    }
    if (own == root) {
      return mount_point;
    }
    if (own.starts_with(root + "/")) {
      return mount_point + own.substr(root.size());
    }
  }
  return {};
}

std::optional<HookCgroup> HookCgroup::create(std::string& why_not)
{
  const std::string parent = own_cgroup_dir();
  if (parent.empty()) {
    why_not = "no cgroup v2 hierarchy holds this process";
    return std::nullopt;
  }
  const std::string path = parent + "/agent-secrets-hook-" + std::to_string(::getpid()) + "-"
                           + std::to_string(g_next_hook.fetch_add(1));
  if (::mkdir(path.c_str(), 0700) != 0) {
    why_not = "cannot create " + path + ": " + ::strerrordesc_np(errno);
    return std::nullopt;
  }
  HookCgroup made(path);
  if (::access((path + "/cgroup.kill").c_str(), W_OK) != 0) {
    why_not = path + " has no writable cgroup.kill (Linux 5.14 or later)";
    return std::nullopt; // `made` removes the directory
  }
  return made;
}

HookCgroup::~HookCgroup()
{
  if (!m_path.empty()) {
    // Empty by now (the reaper waited for every process in it); a failure
    // leaves an empty directory behind, which holds nothing.
    ::rmdir(m_path.c_str());
  }
}

} // namespace rotation
