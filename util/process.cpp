#include "util/process.hpp"

#include "util/error.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <utility>
#include <vector>

namespace util {

namespace {

// Fields `from` to `to` (1-based, as proc(5) numbers them) of /proc/PID/stat;
// nullopt when the process is gone or the line is short.
std::optional<std::vector<uint64_t>> stat_fields(pid_t pid, int from, int to)
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
  std::vector<uint64_t> out;
  const char* p = stat->data() + close + 1;
  const char* const last = stat->data() + stat->size();
  for (int field = 3; field <= to; ++field) {
    while (p < last && *p == ' ') {
      ++p;
    }
    const char* word = p;
    while (p < last && *p != ' ' && *p != '\n') {
      ++p;
    }
    if (word == p) {
      return std::nullopt;
    }
    if (field >= from) {
      uint64_t value = 0;
      const auto [end, ec] = std::from_chars(word, p, value);
      if (ec != std::errc{} || end != p) {
        return std::nullopt;
      }
      out.push_back(value);
    }
  }
  return out;
}

std::optional<std::string> exe_of(pid_t pid)
{
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf.data(), buf.size());
  if (n <= 0 || static_cast<size_t>(n) >= buf.size()) {
    return std::nullopt;
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// arg_start, arg_end, env_start, env_end (fields 48-51), with the command line.
std::optional<std::pair<std::vector<uint64_t>, std::string>> image_of(pid_t pid)
{
  auto layout = stat_fields(pid, 48, 51);
  auto cmdline = read_file_if_exists("/proc/" + std::to_string(pid) + "/cmdline");
  // The kernel shows zeros where we may not look (another uid, not dumpable).
  if (!layout || !cmdline || (*layout)[0] == 0) {
    return std::nullopt;
  }
  return std::make_pair(std::move(*layout), std::move(*cmdline));
}

} // namespace

std::optional<uint64_t> process_start_time(pid_t pid)
{
  const auto fields = stat_fields(pid, 22, 22);
  return fields ? std::optional<uint64_t>((*fields)[0]) : std::nullopt;
}

std::optional<pid_t> process_parent(pid_t pid)
{
  const auto fields = stat_fields(pid, 4, 4);
  return fields ? std::optional<pid_t>(static_cast<pid_t>((*fields)[0])) : std::nullopt;
}

pid_t unforked_ancestor(pid_t pid)
{
  for (int depth = 0; depth < 32; ++depth) { // shells nest subshells a few levels at most
    const auto parent = process_parent(pid);
    if (!parent || *parent <= 1) {
      break;
    }
    const auto exe = exe_of(pid);
    const auto image = image_of(pid);
    if (!exe || !image || exe != exe_of(*parent) || image != image_of(*parent)) {
      break;
    }
    pid = *parent;
  }
  return pid;
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
