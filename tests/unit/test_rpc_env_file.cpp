#include "rpc/env_file.hpp"
#include "temp_dir.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

const std::string k_ids = std::string(rpc::k_env_file_header) + "\n# lease id-1 api_key expires 2030-01-01T00:00:00Z\n"
                          + "# lease id-2 db expires 2030-01-01T00:00:00Z\n# use: set -a; . ./.env\n";

void write(const std::string& path, const std::string& text)
{
  util::write_file_atomic(path, text);
}

bool exists(const std::string& path)
{
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

} // namespace

TEST_CASE("rpc: env_file_leases reads the lease ids of the comment block only")
{
  testutil::TempDir dir;
  const std::string path = dir.file(".env");
  // A value line that looks like a lease comment must not count: values start the moment comments stop.
  write(path, k_ids + "API_KEY='v'\n# lease id-3 trap expires x\n");
  CHECK(rpc::env_file_leases(path) == std::vector<std::string>{"id-1", "id-2"});
  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  CHECK(rpc::env_file_leases(fd.get()) == std::vector<std::string>{"id-1", "id-2"});

  write(path, "# written by someone else\nX=1\n");
  CHECK_FALSE(rpc::env_file_leases(path));
  write(path, std::string(rpc::k_env_file_header)); // the header alone, no newline
  CHECK(rpc::env_file_leases(path) == std::vector<std::string>{});
  write(path, std::string(rpc::k_env_file_header) + "\n# lease last-id x expires y"); // no final newline
  CHECK(rpc::env_file_leases(path) == std::vector<std::string>{"last-id"});
}

TEST_CASE("rpc: delete_env_file deletes only a checked file, never through a link")
{
  testutil::TempDir dir;
  const std::string sub = dir.file("sub");
  REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
  const std::string path = sub + "/.env";

  write(path, "PRECIOUS=1\n");
  CHECK(rpc::delete_env_file(path).starts_with("left alone: not written by secrets env"));
  CHECK(exists(path));

  write(path, k_ids + "X='1'\n");
  // The same file reached through a symlinked directory is left alone.
  const std::string link = dir.file("link");
  REQUIRE(::symlink(sub.c_str(), link.c_str()) == 0);
  CHECK(rpc::delete_env_file(link + "/.env").starts_with("left alone: its directory is not reachable"));
  CHECK(exists(path));
  // A symlink as the file itself is left alone, and its target too.
  const std::string file_link = dir.file(".env");
  REQUIRE(::symlink(path.c_str(), file_link.c_str()) == 0);
  CHECK(rpc::delete_env_file(file_link).starts_with("left alone"));
  CHECK(exists(path));

  CHECK(rpc::delete_env_file(path) == "deleted: its leases ended");
  CHECK_FALSE(exists(path));
  CHECK(rpc::delete_env_file(path) == "already gone");
  CHECK(rpc::delete_env_file(dir.file("missing/.env")) == "already gone");
  CHECK(rpc::delete_env_file("relative/.env").starts_with("left alone"));
  CHECK(rpc::delete_env_file(sub + "/../sub/.env").starts_with("left alone"));
}
