#include "util/process.hpp"

#include "util/error.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

namespace util {

std::optional<uint64_t> process_start_time(pid_t pid)
{
  if (pid <= 0) {
    return std::nullopt;
  }
  const auto stat = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) {
    return std::nullopt;
  }
  // "PID (comm) state ppid ...": comm may hold anything, so count fields after the last ')'.
  const auto close = stat->rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  size_t pos = close + 1;
  for (int field = 3; field < 22; ++field) { // from the space before field 3 to the one before 22
    pos = stat->find(' ', pos + 1);
    if (pos == std::string::npos) {
      return std::nullopt;
    }
  }
  uint64_t start = 0;
  const char* first = stat->data() + pos + 1;
  const auto [end, ec] = std::from_chars(first, stat->data() + stat->size(), start);
  if (ec != std::errc{} || end == first) {
    return std::nullopt;
  }
  return start;
}

UniqueFd open_process(pid_t pid, uint64_t start_time)
{
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd && errno == ENOSYS) {
    throw Error(Errc::invalid_params, "this kernel cannot watch a process (pidfd_open needs Linux 5.3 or later)",
                "secrets lease NAME --bind none");
  }
  // Checked after opening: if the start time still matches, the pidfd names
  // the process we mean, whatever happens to the pid from now on.
  if (!fd || process_start_time(pid) != start_time) {
    return {};
  }
  return fd;
}

} // namespace util
