#include "util/file.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <string.h> // explicit_bzero
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <random>

namespace util {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept
{
  if (this != &other) {
    reset(other.release());
  }
  return *this;
}

UniqueFd::~UniqueFd()
{
  reset();
}

int UniqueFd::release()
{
  const int fd = m_fd;
  m_fd = -1;
  return fd;
}

void UniqueFd::reset(int fd)
{
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  m_fd = fd;
}

std::optional<std::string> read_file_if_exists(const std::string& path)
{
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    throw_errno("failed to open " + path);
  }
  std::string out;
  // Sized up front: growing by doubling copied a 1 MiB secrets.age (10,000
  // secrets) several times over, through fresh mmap'd pages each time.
  struct stat st{};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) {
    out.reserve(static_cast<size_t>(st.st_size));
  }
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("failed to read " + path);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void wipe(std::string& s)
{
  if (s.capacity() > 0) {
    explicit_bzero(s.data(), s.capacity());
  }
  s.clear();
}

std::string read_file(const std::string& path)
{
  auto content = read_file_if_exists(path);
  if (!content) {
    throw_errno("failed to open " + path, ENOENT);
  }
  return std::move(*content);
}

std::optional<std::string> read_fd(int fd, size_t limit, const std::string& what)
{
  std::string text;
  char buf[65536];
  struct WipeBuf
  {
    char* p;
    ~WipeBuf() { explicit_bzero(p, sizeof(buf)); }
  } wipe_buf{buf};
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      wipe(text);
      throw_errno("failed to read " + what);
    }
    if (n == 0) {
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > limit) {
      wipe(text);
      return std::nullopt;
    }
  }
}

bool near_fd_limit(int fd, size_t reserve)
{
  rlimit limit{};
  return ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
         && static_cast<rlim_t>(fd) + reserve >= limit.rlim_cur;
}

void write_all(int fd, std::string_view data, const std::string& what)
{
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno("failed to write " + what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string dirname_of(const std::string& path)
{
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

void fsync_dir(const std::string& dir)
{
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    throw_errno("failed to sync directory " + dir);
  }
}

AtomicFile::AtomicFile(std::string path, unsigned mode) : m_path(std::move(path))
{
  std::random_device rd;
  for (int attempt = 0; attempt < 16 && !m_fd; ++attempt) {
    char suffix[16];
    std::snprintf(suffix, sizeof(suffix), ".tmp.%08x", rd());
    m_tmp_path = m_path + suffix;
    m_fd.reset(::open(m_tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!m_fd && errno != EEXIST) {
      throw_errno("failed to create " + m_tmp_path);
    }
  }
  if (!m_fd) {
    throw_errno("failed to create a temp file for " + m_path);
  }
}

AtomicFile::~AtomicFile()
{
  if (!m_committed) {
    m_fd.reset();
    ::unlink(m_tmp_path.c_str());
  }
}

void AtomicFile::write(std::string_view data)
{
  write_all(m_fd.get(), data, m_tmp_path);
}

void AtomicFile::sync_and_close()
{
  if (::fsync(m_fd.get()) != 0) {
    throw_errno("failed to sync " + m_tmp_path);
  }
  if (::close(m_fd.release()) != 0) {
    throw_errno("failed to close " + m_tmp_path);
  }
}

void AtomicFile::commit_new()
{
  sync_and_close();
  if (::link(m_tmp_path.c_str(), m_path.c_str()) != 0) {
    if (errno == EEXIST) {
      throw Error(Errc::already_exists, m_path + " already exists");
    }
    throw_errno("failed to create " + m_path);
  }
  ::unlink(m_tmp_path.c_str());
  m_committed = true;
  fsync_dir(dirname_of(m_path));
}

void AtomicFile::commit()
{
  sync_and_close();
  if (::rename(m_tmp_path.c_str(), m_path.c_str()) != 0) {
    throw_errno("failed to rename " + m_tmp_path + " to " + m_path);
  }
  m_committed = true;
  fsync_dir(dirname_of(m_path));
}

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode)
{
  AtomicFile file(path, mode);
  file.write(data);
  file.commit();
}

void ensure_private_dir(const std::string& path)
{
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      throw Error(Errc::io, path + " exists and is not a directory");
    }
    return;
  }
  const std::string parent = dirname_of(path);
  if (parent != path && parent != "." && parent != "/") {
    ensure_private_dir(parent);
  }
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    throw_errno("failed to create directory " + path);
  }
}

std::optional<std::string> permission_problem(const std::string& path, bool is_dir)
{
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  if (st.st_uid != ::geteuid()) {
    return path + " is owned by uid " + std::to_string(st.st_uid) + ", not by us; fix: chown "
           + std::to_string(::geteuid()) + " " + path;
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", st.st_mode & 0777);
    return path + " is accessible by group or others (mode " + mode + "); fix: chmod "
           + (is_dir ? "700 " : "600 ") + path;
  }
  return std::nullopt;
}

} // namespace util
