// Reading an audit file without a Log: tail, WAL replay, the head.

#include "audit/read.hpp"

#include "audit/chain.hpp"
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

// An entry as tail returns it: a JSON object. accept() checks without
// building the object, which a streamed tail never needs.
bool is_entry(const std::string& line)
{
  const auto start = line.find_first_not_of(" \t\r");
  return start != std::string::npos && line[start] == '{' && nlohmann::json::accept(line);
}

} // namespace

std::vector<nlohmann::json> tail(const std::string& path, size_t n)
{
  std::vector<nlohmann::json> entries;
  TailReader reader(path, n);
  while (auto line = reader.next()) {
    entries.push_back(parse_entry(*line));
  }
  return entries;
}

TailReader::TailReader(const std::string& path, size_t n)
{
  auto file = open_for_reading(path);
  if (!file) {
    return;
  }
  m_fd = std::move(file->first);
  const std::string what = "audit log " + path;
  const uint64_t end = complete_prefix_size(m_fd.get(), file->second, what);
  uint64_t start = 0;
  if (n > 0) {
    // Back from the end over n entries; the forward read then starts at the
    // first of them. Only a line's length is ever held.
    ReverseLineReader back(m_fd.get(), end, what);
    uint64_t offset = end;
    size_t found = 0;
    while (found < n) {
      auto line = back.previous();
      if (!line) {
        break;
      }
      offset -= line->size() + 1;
      found += is_entry(*line) ? 1 : 0;
    }
    start = offset;
  }
  if (::lseek(m_fd.get(), static_cast<off_t>(start), SEEK_SET) < 0) {
    util::throw_errno("failed to seek in " + what);
  }
  m_reader.emplace(m_fd.get(), end - start, what);
}

std::optional<std::string> TailReader::next()
{
  if (!m_reader) {
    return std::nullopt;
  }
  while (auto line = m_reader->next()) {
    if (is_entry(*line)) {
      return line;
    }
  }
  return std::nullopt;
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
    if (!has_hash_member(*line)) {
      continue; // a Go line: never replayed, so not parsed
    }
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

Head read_head(const std::string& path)
{
  Head head;
  auto file = open_for_reading(path);
  if (!file) {
    return head;
  }
  const int fd = file->first.get();
  const std::string what = "audit log " + path;
  ReverseLineReader reader(fd, complete_prefix_size(fd, file->second, what), what);
  while (auto line = reader.previous()) {
    const auto sealed = unseal_line(*line);
    if (!sealed) {
      continue;
    }
    if (const auto seq = chained_seq(parse_entry(*line))) {
      head.seq = *seq;
      head.hash = std::string(sealed->hash);
      head.body = sealed->body;
      break;
    }
  }
  return head;
}

std::optional<std::string> find_line(const std::string& path, uint64_t seq)
{
  auto file = open_for_reading(path);
  if (!file) {
    return std::nullopt;
  }
  const int fd = file->first.get();
  const std::string what = "audit log " + path;
  ReverseLineReader reader(fd, complete_prefix_size(fd, file->second, what), what);
  while (auto line = reader.previous()) {
    if (!has_hash_member(*line)) {
      continue;
    }
    const auto entry_seq = chained_seq(parse_entry(*line));
    if (!entry_seq || *entry_seq > seq) {
      continue;
    }
    if (*entry_seq == seq) {
      return line;
    }
    break; // seq only grows along the file: it is not there
  }
  return std::nullopt;
}

} // namespace audit
