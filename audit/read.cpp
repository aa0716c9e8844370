// Reading an audit file without a Log: verify, tail, and WAL replay.

#include "audit/chain.hpp"
#include "audit/lines.hpp"
#include "audit/log.hpp"
#include "util/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace audit {

namespace {

// nullopt if the file does not exist.
std::optional<std::pair<util::UniqueFd, uint64_t>> open_for_reading(const std::string& path)
{
  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    util::throw_errno("failed to open audit log " + path);
  }
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) {
    util::throw_errno("failed to stat audit log " + path);
  }
  return std::make_pair(std::move(fd), static_cast<uint64_t>(st.st_size));
}

nlohmann::json parse_entry(const std::string& line)
{
  return nlohmann::json::parse(line, nullptr, false);
}

} // namespace

VerifyResult verify_file(const std::string& path)
{
  VerifyResult result;
  auto file = open_for_reading(path);
  if (!file) {
    result.message = "no audit log at " + path;
    return result;
  }
  LineReader reader(file->first.get(), file->second, "audit log " + path);

  uint64_t number = 0;
  std::string expected_prev(k_genesis_prev);
  std::optional<uint64_t> last_seq; // set once our chain has started
  const auto broken = [&](const std::string& why) {
    result.ok = false;
    result.first_bad_line = number;
    result.message = "line " + std::to_string(number) + " of " + path + ": " + why;
    return result;
  };

  while (auto line = reader.next()) {
    ++number;
    const std::string prev = std::move(expected_prev);
    expected_prev = sha256_hex(*line);
    const auto entry = parse_entry(*line);
    if (!entry.is_object()) {
      return broken("not a JSON object");
    }

    if (!entry.contains("hash")) {
      if (last_seq) {
        return broken("no hash after the chain started (a line was inserted, or its hash stripped)");
      }
      if (entry.contains("seq") || entry.contains("prev")) {
        return broken("seq or prev without hash (its hash was stripped)");
      }
      ++result.entries;
      ++result.legacy_entries;
      continue;
    }

    const auto sealed = unseal_line(*line);
    const auto& claimed = entry["hash"];
    if (!sealed || !claimed.is_string() || claimed.get_ref<const std::string&>() != sealed->hash) {
      return broken("hash is malformed or not the last member");
    }
    if (sha256_hex(sealed->body) != sealed->hash) {
      return broken("hash does not match the line (it was edited)");
    }

    const auto prev_member = entry.find("prev");
    if (prev_member == entry.end() || !prev_member->is_string()
        || prev_member->get_ref<const std::string&>() != prev) {
      return broken(number == 1 ? "prev is not the first line's all-zero value (lines were deleted before it)"
                                : "prev does not match line " + std::to_string(number - 1)
                                    + " (a line was deleted, inserted or reordered)");
    }

    const uint64_t want_seq = last_seq ? *last_seq + 1 : 1;
    const auto seq = chained_seq(entry);
    if (!seq || *seq != want_seq) {
      return broken("seq is " + (seq ? std::to_string(*seq) : std::string("missing")) + ", expected "
                    + std::to_string(want_seq));
    }
    last_seq = seq;
    ++result.entries;
  }

  result.torn_tail = !reader.fragment().empty();
  result.message = std::to_string(result.entries) + " entries verified";
  if (result.legacy_entries > 0) {
    result.message += ", " + std::to_string(result.legacy_entries) + " of them unchained lines from the Go daemon";
  }
  if (result.torn_tail) {
    result.message += "; the last line is incomplete (" + std::to_string(reader.fragment().size())
                      + " bytes, a torn write): the daemon removes it when it next opens the log";
  }
  return result;
}

std::vector<nlohmann::json> tail(const std::string& path, size_t n)
{
  std::vector<nlohmann::json> entries;
  auto file = open_for_reading(path);
  if (!file) {
    return entries;
  }
  const int fd = file->first.get();
  const std::string what = "audit log " + path;
  if (n == 0) {
    LineReader reader(fd, file->second, what);
    while (auto line = reader.next()) {
      if (auto entry = parse_entry(*line); entry.is_object()) {
        entries.push_back(std::move(entry));
      }
    }
    return entries;
  }
  ReverseLineReader reader(fd, complete_prefix_size(fd, file->second, what), what);
  while (entries.size() < n) {
    auto line = reader.previous();
    if (!line) {
      break;
    }
    if (auto entry = parse_entry(*line); entry.is_object()) {
      entries.push_back(std::move(entry));
    }
  }
  std::reverse(entries.begin(), entries.end());
  return entries;
}

std::vector<nlohmann::json> read_after(const std::string& path, uint64_t seq)
{
  std::vector<nlohmann::json> entries;
  auto file = open_for_reading(path);
  if (!file) {
    return entries;
  }
  const int fd = file->first.get();
  const std::string what = "audit log " + path;
  // seq only grows along the file, so the first line at or below `seq` from
  // the end is where replay starts: a snapshot's tail is read, not the log.
  ReverseLineReader reader(fd, complete_prefix_size(fd, file->second, what), what);
  while (auto line = reader.previous()) {
    auto entry = parse_entry(*line);
    const auto entry_seq = chained_seq(entry);
    if (!entry_seq) {
      continue;
    }
    if (*entry_seq <= seq) {
      break;
    }
    entries.push_back(std::move(entry));
  }
  std::reverse(entries.begin(), entries.end());
  return entries;
}

} // namespace audit
