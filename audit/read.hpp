#pragma once
// Reading an audit file without a Log: tail, WAL replay, the head. All read
// with constant memory except where the result itself is the entries asked
// for. A missing file reads as empty; a read error throws util::Error
// (Errc::io).

#include "audit/lines.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace audit {

// The last n parsed entries in file order (0 = all), Go lines included;
// unparsable lines and a torn tail are skipped.
std::vector<nlohmann::json> tail(const std::string& path, size_t n);

// The same entries as raw lines, one at a time, so that a 300 MB log is
// streamed, never held: the daemon's secrets.audit and the CLI read this way.
// Each line returned is a JSON object, exactly as written.
class TailReader
{
public:
  // Finds where the last n entries start (a backward read of n lines).
  TailReader(const std::string& path, size_t n);
  // The next entry's line; nullopt at the end (the file's size when opened:
  // lines appended since are not read).
  std::optional<std::string> next();

private:
  util::UniqueFd m_fd;
  std::optional<LineReader> m_reader; // from the first entry to the end; none for a missing file
};

// Our entries with seq greater than `seq`, in order (WAL replay). Reads back
// from the end only as far as needed.
std::vector<nlohmann::json> read_after(const std::string& path, uint64_t seq);

// The last line of ours (one with a hash member and a seq): where a Log
// opened now would continue.
struct Head
{
  uint64_t seq = 0;       // 0: no line of ours
  std::string hash;       // its hash member
  std::string body;       // its bytes without the hash member
};
Head read_head(const std::string& path);

// The line whose seq is `seq`, searched from the end; nullopt if the file
// has no line of ours with that seq (it ends before it, or was rewritten).
std::optional<std::string> find_line(const std::string& path, uint64_t seq);

} // namespace audit
