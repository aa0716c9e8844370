// The keyed chain and its verification (audit/verify.hpp): what a key, the
// key's first keyed seq, a lost key, anchors and audit_tampered lines change.
#include "audit/chain.hpp"
#include "audit/log.hpp"
#include "util/file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <unistd.h>

#include <filesystem>

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
  return {{"action", "lease_acquire"}, {"client_id", "agent-" + std::to_string(i)}, {"success", true}};
}

std::shared_ptr<const audit::Key> new_key()
{
  return std::make_shared<const audit::Key>(audit::Key::generate());
}

// Appends `count` lines with the keying given (no key: plain lines).
void append(const std::string& path, int count, const audit::Keying& keying = {})
{
  util::FakeClock clock;
  audit::Log log(path, clock, keying);
  for (int i = 1; i <= count; ++i) {
    log.append(event(i));
  }
  log.wait_durable(log.last_seq());
}

audit::Keying keyed(std::shared_ptr<const audit::Key> key, std::string anchor_path = {})
{
  audit::Keying k;
  k.key = std::move(key);
  k.anchor_path = std::move(anchor_path);
  return k;
}

audit::VerifyOptions with_key(std::shared_ptr<const audit::Key> key, uint64_t first_seq = 1)
{
  audit::VerifyOptions o;
  o.key = std::move(key);
  o.key_first_seq = first_seq;
  return o;
}

// A plain SHA-256 line with the body's prev replaced: what an attacker
// without the key writes.
std::string rechain_plain(const std::string& line, const std::string& prev)
{
  auto sealed = audit::unseal_line(line);
  REQUIRE(sealed);
  std::string body = sealed->body;
  body.replace(body.size() - 2 - audit::k_digest_hex_size, audit::k_digest_hex_size, prev);
  return audit::seal_line(body);
}

} // namespace

TEST_CASE("audit keyed: lines carry HMAC-SHA-256 under the key and prev is the previous line's hash")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  const auto key = new_key();
  append(path, 5, keyed(key));
  const auto lines = read_lines(path);
  REQUIRE(lines.size() == 5);
  std::string prev(audit::k_genesis_prev);
  for (const auto& line : lines) {
    const auto sealed = audit::unseal_line(line);
    REQUIRE(sealed);
    CHECK(sealed->hash == key->mac_hex(sealed->body));
    CHECK(sealed->hash != audit::sha256_hex(sealed->body));
    CHECK(nlohmann::json::parse(line)["prev"] == prev);
    prev = std::string(sealed->hash);
  }

  const auto result = audit::verify_file(path, with_key(key));
  CHECK(result.ok);
  CHECK(result.macs_checked);
  CHECK(result.keyed_entries == 5);
  CHECK(result.unkeyed_entries == 0);

  // Reopened, the chain goes on from the last MAC.
  append(path, 2, keyed(key));
  const auto more = read_lines(path);
  CHECK(nlohmann::json::parse(more[5])["prev"] == std::string(audit::unseal_line(more[4])->hash));
  CHECK(audit::verify_file(path, with_key(key)).keyed_entries == 7);
}

TEST_CASE("audit keyed: another key, or none, does not pass for the key")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  append(path, 3, keyed(new_key()));

  const auto wrong = audit::verify_file(path, with_key(new_key()));
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.first_bad_line == 1);
  CHECK(wrong.message.find("MAC does not match") != std::string::npos);

  // No key: the links and seq only; the MACs are counted as unchecked.
  const auto offline = audit::verify_file(path);
  CHECK(offline.ok);
  CHECK_FALSE(offline.macs_checked);
  CHECK(offline.unchecked_entries == 3);
  CHECK(offline.message.find("structure only") != std::string::npos);
}

TEST_CASE("audit keyed: a deleted line rechained with SHA-256 is found, with or without the key")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  const auto key = new_key();
  append(path, 6, keyed(key));
  auto lines = read_lines(path);
  lines.erase(lines.begin() + 2);
  // Renumber and rechain from the gap on, as the Python attacker does.
  for (size_t i = 2; i < lines.size(); ++i) {
    auto body = audit::unseal_line(lines[i])->body;
    const std::string seq = "{\"seq\":" + std::to_string(i + 2) + ",";
    body.replace(0, seq.size(), "{\"seq\":" + std::to_string(i + 1) + ",");
    lines[i] = rechain_plain(audit::seal_line(body), audit::sha256_hex(lines[i - 1]));
  }
  write_lines(path, lines);

  const auto keyed = audit::verify_file(path, with_key(key));
  CHECK_FALSE(keyed.ok);
  CHECK(keyed.first_bad_line == 3);
  CHECK(keyed.message.find("unkeyed line at seq 3") != std::string::npos);

  const auto offline = audit::verify_file(path);
  CHECK_FALSE(offline.ok);
  CHECK(offline.first_bad_line == 3);
  CHECK(offline.message.find("unkeyed line after keyed lines") != std::string::npos);
}

TEST_CASE("audit keyed: plain and Go lines before the key are unkeyed, and covered by the first keyed line")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  write_lines(path, {R"({"timestamp":"2025-01-01T00:00:00Z","action":"daemon_start","success":true})"});
  append(path, 3);               // plain lines, seq 1-3, as before issue 15
  const auto key = new_key();
  append(path, 4, keyed(key));        // keyed from seq 4 on
  const auto lines = read_lines(path);
  REQUIRE(lines.size() == 8);
  CHECK(nlohmann::json::parse(lines[4])["prev"] == std::string(audit::unseal_line(lines[3])->hash));

  const auto result = audit::verify_file(path, with_key(key, 4));
  CHECK(result.ok);
  CHECK(result.entries == 8);
  CHECK(result.keyed_entries == 4);
  CHECK(result.unkeyed_entries == 4);
  CHECK(result.legacy_entries == 1);
  CHECK(result.message.find("unkeyed") != std::string::npos);

  // Keyed lines are required from the key's first seq on: with first_seq 2,
  // the plain lines 2 and 3 are refused.
  CHECK(audit::verify_file(path, with_key(key, 2)).first_bad_line == 3);

  // A plain line rewritten before the first keyed one (hash recomputed)
  // breaks the keyed line's prev: the attacker cannot re-MAC it.
  auto edited = lines;
  std::string body = audit::unseal_line(edited[2])->body;
  body.replace(body.find("agent-2"), 7, "agent-9");
  edited[2] = audit::seal_line(body);
  write_lines(path, edited);
  const auto broken = audit::verify_file(path, with_key(key, 4));
  CHECK_FALSE(broken.ok);
  CHECK(broken.first_bad_line == 4);
}

TEST_CASE("audit keyed: lines under a lost key are counted, not checked, only when the key says one was lost")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  append(path, 3, keyed(new_key())); // a key that is gone
  const auto current = new_key();
  append(path, 2, keyed(current));

  auto options = with_key(current, 4);
  options.earlier_key_lost = true;
  const auto lost = audit::verify_file(path, options);
  CHECK(lost.ok);
  CHECK(lost.unchecked_entries == 3);
  CHECK(lost.keyed_entries == 2);
  CHECK(lost.message.find("earlier key that is gone") != std::string::npos);

  options.earlier_key_lost = false;
  const auto refused = audit::verify_file(path, options);
  CHECK_FALSE(refused.ok);
  CHECK(refused.first_bad_line == 1);
}

TEST_CASE("audit keyed: the anchor file and the live head catch a cut; a forged or missing anchor is reported")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  const auto anchor_path = audit::anchor_path_for(path);
  CHECK(anchor_path == dir.file("audit.anchor"));
  const auto key = new_key();
  append(path, 5, keyed(key, anchor_path));

  auto options = with_key(key);
  options.anchor_path = anchor_path;
  const auto good = audit::verify_file(path, options);
  CHECK(good.ok);
  REQUIRE(good.anchor);
  CHECK(good.anchor->seq == 5); // the Log anchors its last line when it closes

  const auto lines = read_lines(path);
  write_lines(path, {lines.begin(), lines.end() - 2});
  const auto cut = audit::verify_file(path, options);
  CHECK_FALSE(cut.ok);
  CHECK(cut.first_bad_line == 4);
  CHECK(cut.message.find("lines were cut off its end") != std::string::npos);

  // The running daemon's head catches the cut without any anchor file.
  auto live = with_key(key);
  live.live_head = audit::Anchor{5, std::string(audit::unseal_line(lines[4])->hash), {}};
  CHECK_FALSE(audit::verify_file(path, live).ok);
  // And a line at the head's seq with another MAC.
  write_lines(path, lines);
  live.live_head.hash = std::string(audit::k_genesis_prev);
  CHECK(audit::verify_file(path, live).message.find("its hash differs") != std::string::npos);

  // A forged anchor: moved to seq 3 without the key.
  auto doc = nlohmann::json::parse(util::read_file(anchor_path));
  doc["seq"] = 3;
  doc["hash"] = std::string(audit::unseal_line(lines[2])->hash);
  util::write_file_atomic(anchor_path, doc.dump());
  const auto forged = audit::verify_file(path, options);
  CHECK_FALSE(forged.ok);
  CHECK(forged.message.find("valid MAC") != std::string::npos);

  // No anchor at all, with keyed lines in the log.
  std::filesystem::remove(anchor_path);
  const auto missing = audit::verify_file(path, options);
  CHECK_FALSE(missing.ok);
  CHECK(missing.message.find("is missing") != std::string::npos);

  // The log ends before the key's first keyed line.
  auto late = with_key(key, 9);
  late.earlier_key_lost = true;
  CHECK(audit::verify_file(path, late).message.find("before seq 9") != std::string::npos);
}

TEST_CASE("audit keyed: an audit_tampered line keeps verify failing")
{
  TempDir dir;
  const auto path = dir.file("audit.log");
  const auto key = new_key();
  {
    util::FakeClock clock;
    audit::Log log(path, clock, keyed(key));
    log.append(event(1));
    log.append({{"action", "audit_tampered"}, {"details", "cut below the anchor"}, {"success", false}});
    log.append(event(3));
    log.wait_durable(3);
  }
  const auto result = audit::verify_file(path, with_key(key));
  CHECK_FALSE(result.ok);
  CHECK(result.first_bad_line == 2);
  CHECK(result.message.find("cut below the anchor") != std::string::npos);
}

TEST_CASE("audit keyed: the key is exactly 64 hex digits and compares in constant time")
{
  const auto key = audit::Key::generate();
  CHECK(key.hex().size() == 64);
  CHECK(audit::Key::from_hex(key.hex()).mac_hex("x") == key.mac_hex("x"));
  CHECK_THROWS(audit::Key::from_hex(key.hex().substr(0, 62)));
  CHECK_THROWS(audit::Key::from_hex(key.hex() + "00"));
  CHECK_THROWS(audit::Key::from_hex(std::string(64, 'g')));
  CHECK(audit::mac_equal("ab", "ab"));
  CHECK_FALSE(audit::mac_equal("ab", "ac"));
  CHECK_FALSE(audit::mac_equal("ab", "abc"));
}
