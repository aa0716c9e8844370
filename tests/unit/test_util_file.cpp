// util::AtomicFile (ccache's AtomicFile): a temp file beside the target, made
// with the file's mode from the start; commit() renames it over the target;
// anything that ends before commit (the destructor, an exception, a failed
// write or rename) leaves the old file as it was and no temp file behind.
#include "temp_dir.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Every name in the directory, the target's included.
std::vector<std::string> names_in(const std::string& dir)
{
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct stat stat_of(const std::string& path)
{
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

// The one temp file an open AtomicFile has made beside `target`.
std::string temp_file_of(const std::string& dir, const std::string& target)
{
  std::string found;
  for (const auto& name : names_in(dir)) {
    if (name.starts_with(target + ".tmp.")) {
      CHECK(found.empty());
      found = dir + "/" + name;
    }
  }
  REQUIRE_FALSE(found.empty());
  return found;
}

// Sets the umask for one scope, so that a test sees the mode AtomicFile asks for.
class ScopedUmask
{
public:
  explicit ScopedUmask(mode_t mask) : m_old(::umask(mask)) {}
  ~ScopedUmask() { ::umask(m_old); }

private:
  mode_t m_old;
};

} // namespace

TEST_CASE("atomic file: commit replaces the target with the new content, and nothing else is left")
{
  testutil::TempDir dir;
  const std::string path = dir.file("config.json");
  util::write_file_atomic(path, "old");
  {
    util::AtomicFile file(path);
    file.write("new ");
    file.write("content");
    CHECK(util::read_file(path) == "old"); // nothing shows before commit
    file.commit();
  }
  CHECK(util::read_file(path) == "new content");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"config.json"});
  CHECK((stat_of(path).st_mode & 07777) == 0600);

  // A target that did not exist is created by commit, not before.
  const std::string fresh = dir.file("fresh");
  {
    util::AtomicFile file(fresh);
    file.write("x");
    CHECK_FALSE(util::read_file_if_exists(fresh).has_value());
    file.commit();
  }
  CHECK(util::read_file(fresh) == "x");
}

TEST_CASE("atomic file: the destructor discards what was not committed")
{
  testutil::TempDir dir;
  const std::string path = dir.file("leases.json");
  util::write_file_atomic(path, "old");
  const auto inode = stat_of(path).st_ino;
  {
    util::AtomicFile file(path);
    file.write("half of a new file");
  }
  CHECK(util::read_file(path) == "old");
  CHECK(stat_of(path).st_ino == inode);
  CHECK(names_in(dir.path()) == std::vector<std::string>{"leases.json"});

  // The same when an exception leaves the writer's scope.
  try {
    util::AtomicFile file(path);
    file.write("half");
    throw std::runtime_error("the caller failed half way");
  } catch (const std::runtime_error&) {
  }
  CHECK(util::read_file(path) == "old");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"leases.json"});

  // And no target appears when there was none.
  {
    util::AtomicFile file(dir.file("absent"));
    file.write("x");
  }
  CHECK(names_in(dir.path()) == std::vector<std::string>{"leases.json"});
}

TEST_CASE("atomic file: the temp file is made beside the target with the target's mode, before any byte is written")
{
  testutil::TempDir dir;
  const ScopedUmask no_mask(0); // so what we see is the mode AtomicFile asked for, not the umask's doing
  {
    util::AtomicFile file(dir.file("secrets.age"));
    const std::string temp = temp_file_of(dir.path(), "secrets.age"); // same directory: rename is atomic
    CHECK((stat_of(temp).st_mode & 07777) == 0600);
    CHECK(S_ISREG(stat_of(temp).st_mode));
    file.write("value");
    file.commit();
    CHECK_FALSE(std::filesystem::exists(temp));
  }
  CHECK((stat_of(dir.file("secrets.age")).st_mode & 07777) == 0600);
  {
    util::AtomicFile file(dir.file("public"), 0644);
    CHECK((stat_of(temp_file_of(dir.path(), "public")).st_mode & 07777) == 0644);
    file.commit();
  }
  CHECK((stat_of(dir.file("public")).st_mode & 07777) == 0644);
  // Two writers of one path at once get temp files of their own.
  util::AtomicFile a(dir.file("x"));
  util::AtomicFile b(dir.file("x"));
  a.write("a");
  b.write("b");
  a.commit();
  b.commit();
  CHECK(util::read_file(dir.file("x")) == "b");
}

TEST_CASE("atomic file: a failed write leaves the old file and no temp file")
{
  testutil::TempDir dir;
  const std::string path = dir.file("state.json");
  util::write_file_atomic(path, "old");
  const auto inode = stat_of(path).st_ino;
  // A file size limit makes write(2) fail with EFBIG, as a full disk fails
  // with ENOSPC: after the limit, not at the start. No assertion runs while
  // the limit is set, so doctest's own output is never cut by it.
  rlimit old_limit{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN); // else the kernel ends the process
  std::string error;
  {
    util::AtomicFile file(path);
    rlimit small = old_limit;
    small.rlim_cur = 4096;
    ::setrlimit(RLIMIT_FSIZE, &small);
    try {
      file.write(std::string(3 * 4096, 'x'));
      file.commit();
    } catch (const util::Error& e) {
      error = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
  }
  ::signal(SIGXFSZ, old_handler);
  CHECK(error.find(path + ".tmp.") != std::string::npos); // names the file it could not write
  CHECK(error.find("too large") != std::string::npos);    // EFBIG: "file too large"
  CHECK(util::read_file(path) == "old");
  CHECK(stat_of(path).st_ino == inode);
  CHECK(names_in(dir.path()) == std::vector<std::string>{"state.json"});
}

TEST_CASE("atomic file: a failed rename leaves what was there, and a missing directory fails at once")
{
  testutil::TempDir dir;
  // A non-empty directory where the target goes: rename(2) cannot replace it.
  const std::string path = dir.file("leases.json");
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  util::write_file_atomic(path + "/inside", "kept");
  {
    util::AtomicFile file(path);
    file.write("new");
    CHECK_THROWS_AS(file.commit(), util::Error);
  }
  CHECK(util::read_file(path + "/inside") == "kept");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"leases.json"});

  try {
    util::AtomicFile file(dir.file("no/such/dir/file"));
    FAIL("expected util::Error");
  } catch (const util::Error& e) {
    CHECK(e.code() == util::Errc::io);
    CHECK(std::string(e.what()).find(dir.file("no/such/dir/file")) != std::string::npos);
  }
  CHECK(names_in(dir.path()) == std::vector<std::string>{"leases.json"});
}

TEST_CASE("atomic file: commit_new creates a file but never replaces one, even one made after it opened")
{
  testutil::TempDir dir;
  const std::string path = dir.file(".env");
  {
    util::AtomicFile file(path);
    file.write("A=1\n");
    file.commit_new();
  }
  CHECK(util::read_file(path) == "A=1\n");
  CHECK(names_in(dir.path()) == std::vector<std::string>{".env"});

  // Someone writes the target between our open and our commit: theirs stays.
  const std::string raced = dir.file("raced.env");
  {
    util::AtomicFile file(raced);
    file.write("ours");
    util::write_file_atomic(raced, "theirs");
    bool refused = false;
    try {
      file.commit_new();
    } catch (const util::Error& e) {
      refused = e.code() == util::Errc::already_exists;
    }
    CHECK(refused);
  }
  CHECK(util::read_file(raced) == "theirs");
  CHECK(names_in(dir.path()) == std::vector<std::string>{".env", "raced.env"});
}
