// Reading without a Log (audit/read.hpp): the streamed tail, the head, a line by seq.
#include "audit/chain.hpp"
#include "audit/log.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace {

using testutil::TempDir;

void write_events(const std::string& path, int count)
{
  util::FakeClock clock;
  audit::Log log(path, clock);
  for (int i = 1; i <= count; ++i) {
    log.append({{"action", "lease_acquire"}, {"client_id", "agent-" + std::to_string(i)}, {"success", true}});
  }
  log.wait_durable(log.last_seq());
}

void append_raw(const std::string& path, const std::string& bytes)
{
  util::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND));
  REQUIRE(fd);
  util::write_all(fd.get(), bytes, path);
}

std::vector<uint64_t> tail_seqs(const std::string& path, size_t n)
{
  std::vector<uint64_t> seqs;
  audit::TailReader reader(path, n);
  while (auto line = reader.next()) {
    seqs.push_back(nlohmann::json::parse(*line).value("seq", uint64_t{0}));
  }
  return seqs;
}

} // namespace

TEST_CASE("audit read: the tail reader returns the last n entries as written, skipping what is not an entry")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  CHECK(tail_seqs(dir.file("missing.log"), 0).empty());
  write_events(path, 5);
  append_raw(path, "not json\n[1,2]\n");
  write_events(path, 2);      // seq 6, 7
  append_raw(path, "{\"torn");  // a torn tail: never an entry

  CHECK(tail_seqs(path, 0) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7});
  CHECK(tail_seqs(path, 3) == std::vector<uint64_t>{5, 6, 7});
  CHECK(tail_seqs(path, 1) == std::vector<uint64_t>{7});
  CHECK(tail_seqs(path, 100).size() == 7);
  CHECK(audit::tail(path, 2).back()["client_id"] == "agent-2");

  // Bytes as in the file: the hash of a line the tail returns still verifies.
  audit::TailReader reader(path, 1);
  const auto line = reader.next();
  REQUIRE(line);
  const auto sealed = audit::unseal_line(*line);
  REQUIRE(sealed);
  CHECK(audit::sha256_hex(sealed->body) == sealed->hash);
}

TEST_CASE("audit read: the head and a line by seq")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  CHECK(audit::read_head(path).seq == 0);
  util::write_file_atomic(path, R"({"timestamp":"2025-01-01T00:00:00Z","action":"daemon_start","success":true})" "\n");
  CHECK(audit::read_head(path).seq == 0); // a Go line is not ours
  write_events(path, 4);
  append_raw(path, R"({"timestamp":"2025-01-01T00:00:00Z","action":"daemon_stop","success":true})" "\n");
  const auto head = audit::read_head(path);
  CHECK(head.seq == 4);
  CHECK(audit::sha256_hex(head.body) == head.hash);
  const auto third = audit::find_line(path, 3);
  REQUIRE(third);
  CHECK(nlohmann::json::parse(*third)["client_id"] == "agent-3");
  CHECK_FALSE(audit::find_line(path, 5));
  CHECK_FALSE(audit::find_line(path, 0));
}
