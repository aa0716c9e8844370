#include "killswitch/wipe.hpp"

#include "util/error.hpp"
#include "util/file.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace killswitch {

bool wipe_file(const std::string& path)
{
  util::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) {
      return false;
    }
    util::throw_errno("failed to open " + path + " for wiping");
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    util::throw_errno("failed to stat " + path);
  }
  const std::string zeros(65536, '\0');
  for (off_t left = st.st_size; left > 0;) {
    const auto n = static_cast<size_t>(std::min<off_t>(left, static_cast<off_t>(zeros.size())));
    util::write_all(fd.get(), std::string_view(zeros.data(), n), path);
    left -= static_cast<off_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    util::throw_errno("failed to sync " + path);
  }
  fd.reset();
  if (::unlink(path.c_str()) != 0) {
    util::throw_errno("failed to unlink " + path);
  }
  util::fsync_dir(util::dirname_of(path));
  return true;
}

} // namespace killswitch
