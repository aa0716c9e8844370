#pragma once
// File helpers: an owning fd, whole-file reads, atomic replacement, and the
// permission rules of DESIGN.md section 2 (home 0700, files 0600).
// Everything here throws util::Error (Errc::io) with "what path: reason".

#include <optional>
#include <string>
#include <string_view>

namespace util {

class UniqueFd
{
public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return m_fd; }
  explicit operator bool() const { return m_fd >= 0; }
  int release();
  void reset(int fd = -1);

private:
  int m_fd = -1;
};

// Reads the whole file; nullopt if it does not exist.
std::optional<std::string> read_file_if_exists(const std::string& path);
std::string read_file(const std::string& path);
// Reads `fd` to its end (stdin, a pipe). nullopt once more than `limit` bytes
// came; the read buffer is wiped, as the bytes may be a secret. Throws
// util::Error naming `what` on a read error.
std::optional<std::string> read_fd(int fd, size_t limit, const std::string& what);

// Whether `fd` is among the top `reserve` descriptors RLIMIT_NOFILE allows:
// listeners close such connections at once, keeping the reserve for files.
bool near_fd_limit(int fd, size_t reserve);

// Zeroes a string's whole buffer (explicit_bzero, so not optimised away) and empties it.
void wipe(std::string& s);
void write_all(int fd, std::string_view data, const std::string& what);
void fsync_dir(const std::string& dir);
std::string dirname_of(const std::string& path);

// Writes a temp file (mode 0600, same directory), then commit() does fsync,
// rename over the target, and fsync of the directory. A crash at any instant
// leaves the old file or the new one; the destructor unlinks an uncommitted
// temp file (ccache's AtomicFile).
class AtomicFile
{
public:
  explicit AtomicFile(std::string path, unsigned mode = 0600);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view data);
  void commit();
  // As commit(), but never replaces an existing file: link(), not rename().
  // Throws Error(Errc::already_exists) if `path` exists, even one created
  // since the caller looked (the temp file is then removed).
  void commit_new();

private:
  void sync_and_close();

  std::string m_path;
  std::string m_tmp_path;
  UniqueFd m_fd;
  bool m_committed = false;
};

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0600);

// Creates the directory with 0700 if absent (and its parents with 0700).
void ensure_private_dir(const std::string& path);

// Returns an error message naming the chmod fix if `path` is group- or
// world-accessible or not owned by us; nullopt if fine or absent.
std::optional<std::string> permission_problem(const std::string& path, bool is_dir);

} // namespace util
