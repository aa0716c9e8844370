#include "rpc/env_file.hpp"

#include "util/file.hpp"

#include <fcntl.h>
#include <string.h> // explicit_bzero
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace rpc {

namespace {

// The directory `dir` (absolute), opened one component at a time from "/"
// with O_NOFOLLOW, so that no symlink and no path re-resolution is involved.
// Empty, with errno set, when a component is missing, a symlink or not a directory.
util::UniqueFd open_directory_nofollow(const std::string& dir)
{
  util::UniqueFd fd(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  size_t pos = 1;
  while (fd && pos < dir.size()) {
    size_t end = dir.find('/', pos);
    if (end == std::string::npos) {
      end = dir.size();
    }
    const std::string part = dir.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      errno = EINVAL; // registered paths are normalized; a ".." is not ours
      return {};
    }
    fd.reset(::openat(fd.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  return fd;
}

} // namespace

std::optional<std::vector<std::string>> env_file_leases(const std::string& path)
{
  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    return std::nullopt;
  }
  return env_file_leases(fd.get());
}

std::optional<std::vector<std::string>> env_file_leases(int fd)
{
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    return std::nullopt;
  }
  const std::string_view header = k_env_file_header;
  std::string head(header.size(), '\0');
  if (::pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) || head != header) {
    return std::nullopt;
  }
  // The comment block, read from the descriptor (the path may be replaced
  // meanwhile) until the first line that is not a comment: values follow it.
  std::string text;
  char buf[4096];
  off_t offset = static_cast<off_t>(header.size());
  size_t pos = std::string::npos; // start of the next unread line; npos until the header's line ends
  std::vector<std::string> ids;
  // False once the header block is over.
  const auto take = [&ids](std::string_view line) {
    if (line.starts_with("# lease ")) {
      const auto rest = line.substr(8);
      ids.emplace_back(rest.substr(0, rest.find(' ')));
    }
    return line.starts_with("#");
  };
  bool done = false;
  while (!done) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n < 0) {
      explicit_bzero(buf, sizeof buf);
      util::wipe(text);
      return std::nullopt; // unreadable: not ours to judge
    }
    text.append(buf, static_cast<size_t>(n));
    offset += n;
    if (pos == std::string::npos) {
      const size_t nl = text.find('\n');
      if (nl == std::string::npos && n > 0) {
        continue;
      }
      pos = nl == std::string::npos ? text.size() : nl + 1;
    }
    for (size_t end; pos < text.size() && (end = text.find('\n', pos)) != std::string::npos; pos = end + 1) {
      if (!take(std::string_view(text.data() + pos, end - pos))) {
        done = true; // values follow
        break;
      }
    }
    if (n == 0) {
      if (!done && pos < text.size()) { // a last line without '\n'
        take(std::string_view(text.data() + pos, text.size() - pos));
      }
      done = true;
    }
  }
  explicit_bzero(buf, sizeof buf);
  util::wipe(text);
  return ids;
}

std::string delete_env_file(const std::string& path)
{
  const size_t slash = path.rfind('/');
  if (path.empty() || path.front() != '/' || slash == path.size() - 1) {
    return "left alone: not an absolute file path";
  }
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = path.substr(slash + 1);
  const util::UniqueFd dirfd = open_directory_nofollow(dir);
  if (!dirfd) {
    return errno == ENOENT ? "already gone"
                           : std::string("left alone: its directory is not reachable without following a link (")
                               + std::strerror(errno) + ")";
  }
  const util::UniqueFd fd(::openat(dirfd.get(), base.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    return errno == ENOENT ? "already gone" : "left alone: not written by secrets env";
  }
  struct stat checked{};
  if (::fstat(fd.get(), &checked) != 0 || !env_file_leases(fd.get())) {
    return "left alone: not written by secrets env";
  }
  struct stat now{};
  if (::fstatat(dirfd.get(), base.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_dev != checked.st_dev
      || now.st_ino != checked.st_ino) {
    return "left alone: it was replaced while being checked";
  }
  if (::unlinkat(dirfd.get(), base.c_str(), 0) != 0) {
    return std::string("failed to delete: ") + std::strerror(errno);
  }
  return "deleted: its leases ended";
}

} // namespace rpc
