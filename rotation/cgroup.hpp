#pragma once
// A cgroup v2 directory for one rotation hook, where one can be made: a child
// of this process's own cgroup, which is writable when it is delegated to us
// (a systemd user service lives in the user manager's delegated subtree) or
// when we are root. Its cgroup.kill ends every process in it at once,
// including those that left the hook's process group or session.
// Any thread; each HookCgroup is owned by the run_hook that made it.

#include <optional>
#include <string>

namespace rotation {

class HookCgroup
{
public:
  // A new, empty cgroup with a cgroup.kill file (Linux 5.14), or nullopt
  // with the reason in `why_not` (no cgroup2 mount, not delegated to us,
  // an older kernel...).
  static std::optional<HookCgroup> create(std::string& why_not);

  HookCgroup(HookCgroup&& other) noexcept : m_path(std::move(other.m_path)) { other.m_path.clear(); }
  HookCgroup& operator=(HookCgroup&&) = delete;
  HookCgroup(const HookCgroup&) = delete;
  HookCgroup& operator=(const HookCgroup&) = delete;
  // Removes the directory; by then the reaper has killed and reaped all
  // that was in it.
  ~HookCgroup();

  const std::string& path() const { return m_path; }

private:
  explicit HookCgroup(std::string path) : m_path(std::move(path)) {}
  std::string m_path;
};

// The cgroup v2 directory of this process (cgroup2 mount point plus the "0::"
// line of /proc/self/cgroup), or "" when there is none.
std::string own_cgroup_dir();

} // namespace rotation
