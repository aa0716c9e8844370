// cmd::load_project, the .secrets.json parser of `secrets env` and `secrets exec`.
// load_project reads a file, so each input is written to a private temp file.
// Properties: errors are util::Error(invalid_params) with a fix; a project that
// loads has named secrets with valid, distinct env vars.
#include "cmd/dotenv.hpp"
#include "cmd/project.hpp"
#include "fuzz/fuzz.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <fcntl.h>
#include <set>
#include <stdlib.h>
#include <string>
#include <unistd.h>

namespace {

// A private temp file, removed at exit.
struct TempFile
{
  TempFile()
  {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path = std::string(base) + "/agent-secrets-fuzz-project-XXXXXX";
    const int fd = ::mkstemp(path.data());
    fuzz::check(fd >= 0, "mkstemp");
    ::close(fd);
  }
  ~TempFile() { ::unlink(path.c_str()); }
  std::string path;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  static const TempFile file;
  const std::string& path = file.path;
  {
    util::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    fuzz::check(static_cast<bool>(fd), "open the temp file");
    util::write_all(fd.get(), fuzz::as_text(data, size), path);
  }
  cmd::Project project;
  try {
    project = cmd::load_project(path, {});
  } catch (const util::Error& e) {
    fuzz::check(e.code() == util::Errc::invalid_params, "load_project throws invalid_params");
    fuzz::check(!e.fix().empty(), "a .secrets.json error has a fix");
    return 0;
  }
  std::set<std::string> env_vars;
  for (const auto& ref : project.secrets) {
    fuzz::check(!ref.name.empty(), "a secret has a name");
    fuzz::check(cmd::is_valid_env_name(ref.env_var), "env_var is a valid name");
    fuzz::check(env_vars.insert(ref.env_var).second, "env vars are distinct");
  }
  return 0;
}
