#include "audit/chain.hpp"
#include "audit/log.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <csignal>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <thread>

namespace {

using nlohmann::ordered_json;

using testutil::TempDir;

std::vector<std::string> read_lines(const std::string& path)
{
  std::vector<std::string> lines;
  const std::string content = util::read_file(path);
  size_t start = 0;
  for (size_t nl = content.find('\n'); nl != std::string::npos; nl = content.find('\n', start)) {
    lines.push_back(content.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines)
{
  std::string content;
  for (const auto& line : lines) {
    content += line + "\n";
  }
  util::write_file_atomic(path, content);
}

ordered_json event(int i)
{
  return {{"action", "lease_acquire"},
          {"secret_name", "db"},
          {"client_id", "agent-" + std::to_string(i)},
          {"lease_id", "lease-" + std::to_string(i)},
          {"success", true},
          {"peer", {{"pid", 4242}, {"uid", 1000}}},
          {"expires_at", "2023-11-14T23:13:20Z"}};
}

void write_events(const std::string& path, int count)
{
  util::FakeClock clock;
  audit::Log log(path, clock);
  for (int i = 1; i <= count; ++i) {
    log.append(event(i));
  }
  log.wait_durable(log.last_seq());
}

std::vector<uint64_t> seqs_of(const std::vector<nlohmann::json>& entries)
{
  std::vector<uint64_t> seqs;
  for (const auto& e : entries) {
    seqs.push_back(e.value("seq", uint64_t{0}));
  }
  return seqs;
}

} // namespace

TEST_CASE("audit: lines have the documented member order, prev and hash")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  util::FakeClock clock;
  {
    audit::Log log(path, clock);
    CHECK(log.append({{"action", "secret_add"}, {"secret_name", "db"}, {"success", true}}) == 1);
    clock.advance(std::chrono::milliseconds{1500});
    CHECK(log.append({{"action", "lease_acquire"},
                      {"secret_name", "db"},
                      {"success", true},
                      {"peer", {{"pid", 7}, {"uid", 1000}}},
                      {"expires_at", "x"}})
          == 2);
    log.wait_durable(2);
    CHECK(log.durable_seq() == 2);
  }
  const auto lines = read_lines(path);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]
        == audit::seal_line(R"({"seq":1,"timestamp":"2023-11-14T22:13:20.000Z","action":"secret_add",)"
                            R"("secret_name":"db","success":true,"prev":")"
                            + std::string(audit::k_genesis_prev) + "\"}"));
  CHECK(lines[1]
        == audit::seal_line(R"({"seq":2,"timestamp":"2023-11-14T22:13:21.500Z","action":"lease_acquire",)"
                            R"("secret_name":"db","success":true,"peer":{"pid":7,"uid":1000},"expires_at":"x",)"
                            R"("prev":")"
                            + audit::sha256_hex(lines[0]) + "\"}"));
  // The hash is removable textually: the last 75 bytes are `,"hash":"<64 hex>"}`.
  const auto& line = lines[1];
  CHECK(audit::sha256_hex(line.substr(0, line.size() - 75) + "}") == line.substr(line.size() - 66, 64));
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("audit: a chain of lines verifies")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  for (const int count : {0, 1, 2, 50}) {
    CAPTURE(count);
    std::filesystem::remove(path);
    write_events(path, count);
    const auto result = audit::verify_file(path);
    CHECK(result.ok);
    CHECK(result.entries == static_cast<uint64_t>(count));
    CHECK_FALSE(result.first_bad_line);
    CHECK_FALSE(result.torn_tail);
  }
  CHECK(audit::verify_file(dir.file("missing.log")).ok);
}

TEST_CASE("audit: verify reports the first broken line")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  write_events(path, 10);
  const auto good = read_lines(path);

  struct Case
  {
    const char* name;
    std::function<void(std::vector<std::string>&)> tamper;
    uint64_t bad_line;
  };
  const std::vector<Case> cases = {
    {"one edited byte", [](auto& l) { l[4][l[4].find("agent-5") + 6] = '6'; }, 5},
    {"edited and re-hashed", [](auto& l) {
       auto sealed = audit::unseal_line(l[4]);
       sealed->body.replace(sealed->body.find("agent-5"), 7, "agent-X");
       l[4] = audit::seal_line(sealed->body);
     }, 6},
    {"deleted line", [](auto& l) { l.erase(l.begin() + 4); }, 5},
    {"deleted first line", [](auto& l) { l.erase(l.begin()); }, 1},
    {"reordered lines", [](auto& l) { std::swap(l[3], l[4]); }, 4},
    {"duplicated line", [](auto& l) { l.insert(l.begin() + 4, l[4]); }, 6},
    {"hash stripped", [](auto& l) { l[6] = l[6].substr(0, l[6].size() - 75) + "}"; }, 7},
    {"hash not last", [](auto& l) { l[6] = l[6].substr(0, l[6].size() - 1) + ",\"x\":1}"; }, 7},
    {"go line inserted after the chain", [](auto& l) {
       l.insert(l.begin() + 2, R"({"timestamp":"2026-01-01T00:00:00Z","action":"secret_add","success":true})");
     }, 3},
    {"not json", [](auto& l) { l[8] = "garbage"; }, 9},
    {"empty line", [](auto& l) { l.insert(l.begin() + 9, ""); }, 10},
  };
  for (const auto& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    auto lines = good;
    c.tamper(lines);
    write_lines(path, lines);
    const auto result = audit::verify_file(path);
    CAPTURE(result.message);
    CHECK_FALSE(result.ok);
    CHECK(result.first_bad_line == c.bad_line);
    CHECK(result.message.find("line " + std::to_string(c.bad_line) + " ") == 0);
  }

  SUBCASE("seq that skips, with a valid hash and prev, is reported")
  {
    auto lines = good;
    auto sealed = audit::unseal_line(lines[9]);
    sealed->body.replace(0, 9, "{\"seq\":11");
    lines[9] = audit::seal_line(sealed->body);
    write_lines(path, lines);
    const auto result = audit::verify_file(path);
    CHECK(result.first_bad_line == 10);
    CHECK(result.message.find("seq is 11, expected 10") != std::string::npos);
  }
}

TEST_CASE("audit: a Go prefix is kept and our first line's prev covers its last line")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  const std::vector<std::string> go = {
    R"({"timestamp":"2026-01-01T10:00:00.123456789-05:00","action":"daemon_start","success":true})",
    R"({"timestamp":"2026-01-01T10:00:01.5-05:00","action":"secret_add","secret_name":"db","success":true})",
  };
  write_lines(path, go);
  write_events(path, 3);

  const auto lines = read_lines(path);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == go[0]);
  CHECK(lines[1] == go[1]);
  const auto first = nlohmann::json::parse(lines[2]);
  CHECK(first["seq"] == 1);
  CHECK(first["prev"] == audit::sha256_hex(go[1]));

  const auto result = audit::verify_file(path);
  CHECK(result.ok);
  CHECK(result.entries == 5);
  CHECK(result.legacy_entries == 2);

  // A Go line that carries seq or prev but no hash is not a Go line.
  write_lines(path, {R"({"seq":1,"action":"x"})"});
  CHECK(audit::verify_file(path).first_bad_line == 1);
}

TEST_CASE("audit: a torn tail is reported by verify and repaired on open")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  write_events(path, 3);
  const std::string intact = util::read_file(path);
  util::write_file_atomic(path, intact + "{\"seq\":");

  const auto torn = audit::verify_file(path);
  CHECK(torn.ok);
  CHECK(torn.torn_tail);
  CHECK(torn.entries == 3);
  CHECK(torn.message.find("incomplete") != std::string::npos);
  CHECK(seqs_of(audit::tail(path, 0)) == std::vector<uint64_t>{1, 2, 3});
  CHECK(seqs_of(audit::read_after(path, 0)) == std::vector<uint64_t>{1, 2, 3});

  util::FakeClock clock;
  {
    audit::Log log(path, clock);
    CHECK(log.torn_tail_repaired());
    CHECK(log.torn_tail_bytes() == 7);
    CHECK(util::read_file(path) == intact);
    CHECK(log.durable_seq() == 3);
    CHECK(log.append(event(4)) == 4);
  }
  const auto repaired = audit::verify_file(path);
  CHECK(repaired.ok);
  CHECK_FALSE(repaired.torn_tail);
  CHECK(repaired.entries == 4);

  SUBCASE("a file that is only a torn line starts a fresh chain")
  {
    util::write_file_atomic(path, "{\"seq\":1,\"time");
    {
      audit::Log log(path, clock);
      CHECK(log.torn_tail_repaired());
      CHECK(log.append(event(1)) == 1);
    }
    CHECK(audit::verify_file(path).ok);
    CHECK(nlohmann::json::parse(read_lines(path).at(0))["prev"] == audit::k_genesis_prev);
  }
}

TEST_CASE("audit: reopening continues the chain")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  write_events(path, 5);
  util::FakeClock clock;
  {
    audit::Log log(path, clock);
    CHECK_FALSE(log.torn_tail_repaired());
    CHECK(log.last_seq() == 5);
    CHECK(log.durable_seq() == 5);
    CHECK(log.append(event(6)) == 6);
  }
  const auto lines = read_lines(path);
  REQUIRE(lines.size() == 6);
  CHECK(nlohmann::json::parse(lines[5])["prev"] == audit::sha256_hex(lines[4]));
  const auto result = audit::verify_file(path);
  CHECK(result.ok);
  CHECK(result.entries == 6);
}

TEST_CASE("audit: tail and read_after")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  write_lines(path, {R"({"timestamp":"2026-01-01T00:00:00Z","action":"daemon_start","success":true})"});
  write_events(path, 10);
  {
    // An unparsable line is skipped by both (verify would report it).
    std::string content = util::read_file(path) + "not json\n";
    util::write_file_atomic(path, content);
  }

  CHECK(seqs_of(audit::tail(path, 3)) == std::vector<uint64_t>{8, 9, 10});
  CHECK(audit::tail(path, 0).size() == 11);
  CHECK(audit::tail(path, 100).size() == 11);
  CHECK(audit::tail(path, 11).front()["action"] == "daemon_start");
  CHECK(audit::tail(path, 1).front()["lease_id"] == "lease-10");

  CHECK(seqs_of(audit::read_after(path, 7)) == std::vector<uint64_t>{8, 9, 10});
  CHECK(audit::read_after(path, 0).size() == 10);
  CHECK(audit::read_after(path, 10).empty());
  CHECK(audit::read_after(path, 7).front()["expires_at"] == "2023-11-14T23:13:20Z");

  CHECK(audit::tail(dir.file("missing.log"), 5).empty());
  CHECK(audit::read_after(dir.file("missing.log"), 0).empty());
}

TEST_CASE("audit: concurrent appends are unique, contiguous and group-committed")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  constexpr int k_threads = 8;
  constexpr int k_per_thread = 500;
  constexpr uint64_t k_total = k_threads * k_per_thread;
  util::FakeClock clock;

  std::vector<std::vector<uint64_t>> seqs(k_threads);
  std::vector<uint64_t> reports;
  uint64_t sync_count = 0;
  {
    audit::Log log(path, clock);
    // The first batch's callback holds the writer, as a slow fdatasync would:
    // everything appended meanwhile must go out in one more write and sync.
    std::mutex mutex;
    std::condition_variable cv;
    bool released = false;
    log.set_on_durable([&](uint64_t durable) {
      std::unique_lock lock(mutex);
      reports.push_back(durable);
      cv.wait(lock, [&] { return released; });
    });

    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < k_per_thread; ++i) {
          seqs[t].push_back(log.append(event(t * k_per_thread + i)));
        }
      });
    }
    for (auto& thread : threads) {
      thread.join();
    }
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    cv.notify_all();
    log.wait_durable(k_total);
    CHECK(log.durable_seq() == k_total);
    sync_count = log.sync_count();
  }

  std::vector<uint64_t> all;
  for (const auto& per_thread : seqs) {
    CHECK(std::is_sorted(per_thread.begin(), per_thread.end()));
    all.insert(all.end(), per_thread.begin(), per_thread.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<uint64_t> expected(k_total);
  std::iota(expected.begin(), expected.end(), uint64_t{1});
  CHECK(all == expected);

  CHECK(sync_count <= 2);
  REQUIRE_FALSE(reports.empty());
  CHECK(std::is_sorted(reports.begin(), reports.end()));
  CHECK(reports.back() == k_total);

  const auto result = audit::verify_file(path);
  CHECK(result.ok);
  CHECK(result.entries == k_total);
  CHECK(seqs_of(audit::tail(path, 0)) == expected);
}

TEST_CASE("audit: appenders that each wait for durability share syncs")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  constexpr int k_threads = 8;
  constexpr int k_per_thread = 50;
  util::FakeClock clock;
  std::atomic<int> early{0};
  {
    audit::Log log(path, clock);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < k_per_thread; ++i) {
          const uint64_t seq = log.append(event(t * k_per_thread + i));
          log.wait_durable(seq);
          if (log.durable_seq() < seq) {
            ++early;
          }
        }
      });
    }
    for (auto& thread : threads) {
      thread.join();
    }
    CHECK(log.sync_count() <= static_cast<uint64_t>(k_threads * k_per_thread));
  }
  CHECK(early == 0);
  CHECK(audit::verify_file(path).entries == k_threads * k_per_thread);
}

TEST_CASE("audit: a failed write is reported, cut back and retried")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  util::FakeClock clock;
  std::vector<std::string> errors;
  std::mutex errors_mutex;
  std::string durable_content;
  {
    audit::Log log(path, clock);
    log.set_on_error([&](const std::string& message) {
      std::lock_guard lock(errors_mutex);
      errors.push_back(message);
    });
    log.wait_durable(log.append(event(1)));
    durable_content = util::read_file(path);

    // RLIMIT_FSIZE makes a write past the limit fail with EFBIG after a
    // partial write: a real short write followed by an error, like a full disk.
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit old_limit{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    rlimit tight = old_limit;
    tight.rlim_cur = durable_content.size() + 10;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &tight) == 0);

    const uint64_t seq2 = log.append(event(2));
    CHECK_THROWS_AS(log.wait_durable(seq2), util::Error);
    // wait_durable asks for a retry, which fails again while the limit holds.
    try {
      log.wait_durable(seq2);
      FAIL("wait_durable did not throw");
    } catch (const util::Error& e) {
      CHECK(e.code() == util::Errc::io);
      CHECK(std::string(e.what()).find("failed to write audit log " + path) == 0);
    }
    CHECK(log.durable_seq() == 1);
    CHECK(log.last_seq() == 2);
    CHECK(util::read_file(path) == durable_content); // no torn line left behind

    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    std::signal(SIGXFSZ, old_handler);

    // The next append retries the failed line first, in its place.
    const uint64_t seq3 = log.append(event(3));
    CHECK(seq3 == 3);
    log.wait_durable(seq3);
    CHECK(log.durable_seq() == 3);
  }
  CHECK(errors.size() >= 2);
  const auto result = audit::verify_file(path);
  CHECK(result.ok);
  CHECK(result.entries == 3);
  CHECK(seqs_of(audit::tail(path, 0)) == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("audit: append drops values and refuses the log's own fields")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  util::FakeClock clock;
  {
    audit::Log log(path, clock);
    log.append({{"action", "secret_add"},
                {"value", "hunter2"},
                {"secret_name", "db"},
                {"peer", {{"pid", 1}, {"uid", 2}, {"value", "hunter3"}}},
                {"list", {{{"value", "hunter4"}}}},
                {"client_id", "bad\xff utf8"},
                {"success", true}});
    for (const char* reserved : {"seq", "timestamp", "prev", "hash"}) {
      CAPTURE(reserved);
      CHECK_THROWS_AS(log.append({{"action", "x"}, {reserved, 1}}), util::Error);
    }
    CHECK_THROWS_AS(log.append({{"secret_name", "db"}}), util::Error);
    CHECK_THROWS_AS(log.append({{"action", ""}}), util::Error);
    CHECK_THROWS_AS(log.append(ordered_json::array()), util::Error);
    CHECK(log.last_seq() == 1);
    CHECK_THROWS_AS(log.wait_durable(2), util::Error);
  }
  const std::string content = util::read_file(path);
  CHECK(content.find("hunter") == std::string::npos);
  CHECK(content.find("value") == std::string::npos);
  CHECK(content.find("bad\xef\xbf\xbd utf8") != std::string::npos);
  CHECK(audit::verify_file(path).ok);
}

TEST_CASE("audit: the log is exclusive and private")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  util::FakeClock clock;
  {
    audit::Log log(path, clock);
    CHECK_THROWS_AS(audit::Log(path, clock), util::Error);
  }
  CHECK(::chmod(path.c_str(), 0644) == 0);
  try {
    audit::Log log(path, clock);
    FAIL("a world-readable log was opened");
  } catch (const util::Error& e) {
    CHECK(std::string(e.what()).find("chmod 600") != std::string::npos);
  }
}
