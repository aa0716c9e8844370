#include "util/paths.hpp"

#include "util/error.hpp"
#include "util/file.hpp"

#include <sys/stat.h>

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace util {

Paths paths_for(const std::string& home)
{
  Paths p;
  p.home = home;
  p.identity = home + "/identity.age";
  p.secrets = home + "/secrets.age";
  p.leases = home + "/leases.json";
  p.state = home + "/state.json";
  p.anchor = home + "/audit.anchor";
  p.audit = home + "/audit.log";
  p.config = home + "/config.json";
  p.socket = home + "/agent-secrets.sock";
  p.pid = home + "/daemon.pid";
  p.log = home + "/daemon.log";
  return p;
}

Paths default_paths()
{
  std::string home;
  if (const char* env = std::getenv("AGENT_SECRETS_HOME"); env && *env) {
    home = env;
  } else {
    const char* user_home = std::getenv("HOME");
    if (!user_home || !*user_home) {
      const passwd* pw = ::getpwuid(::getuid());
      user_home = pw ? pw->pw_dir : nullptr;
    }
    if (!user_home) {
      throw Error(Errc::io, "cannot find the home directory", "export AGENT_SECRETS_HOME=/path/to/dir");
    }
    home = std::string(user_home) + "/.agent-secrets";
  }
  while (home.size() > 1 && home.back() == '/') {
    home.pop_back();
  }
  Paths p = paths_for(home);
  if (const char* sock = std::getenv("AGENT_SECRETS_SOCKET"); sock && *sock) {
    p.socket = sock;
  }
  return p;
}

void check_home(const Paths& paths)
{
  if (auto problem = permission_problem(paths.home, true)) {
    throw Error(Errc::io, "refusing to start: " + *problem, "chmod 700 " + paths.home);
  }
  for (const auto* file : {&paths.identity, &paths.secrets, &paths.leases, &paths.state, &paths.audit, &paths.anchor,
                           &paths.config, &paths.pid, &paths.log}) {
    // A symlink would send our reads, and our writes' renames, somewhere we did not choose.
    struct stat st{};
    if (::lstat(file->c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      throw Error(Errc::io, "refusing to start: " + *file + " is a symbolic link",
                  "replace it with the file it points to: cp --remove-destination \"$(readlink -f " + *file + ")\" "
                    + *file);
    }
    if (auto problem = permission_problem(*file, false)) {
      throw Error(Errc::io, "refusing to start: " + *problem, "chmod 600 " + *file);
    }
  }
}

} // namespace util
