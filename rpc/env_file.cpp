#include "rpc/env_file.hpp"

#include "util/file.hpp"

#include <fcntl.h>
#include <string.h> // explicit_bzero
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

namespace rpc {

std::optional<std::vector<std::string>> env_file_leases(const std::string& path)
{
  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    return std::nullopt;
  }
  const std::string_view header = k_env_file_header;
  std::string head(header.size(), '\0');
  if (::read(fd.get(), head.data(), head.size()) != static_cast<ssize_t>(head.size()) || head != header) {
    return std::nullopt;
  }
  // Read the rest from the same descriptor: the path may be replaced meanwhile.
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) {
      util::wipe(text);
      return std::nullopt; // unreadable: not ours to judge
    }
    text.append(buf, static_cast<size_t>(n));
  }
  explicit_bzero(buf, sizeof buf);
  std::vector<std::string> ids;
  // text starts right after the header, on the header's line.
  size_t pos = std::min(text.find('\n'), text.size()) + 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    const std::string_view line(text.data() + pos, end - pos);
    if (line.starts_with("# lease ")) {
      const auto rest = line.substr(8);
      ids.emplace_back(rest.substr(0, rest.find(' ')));
    } else if (!line.starts_with("#")) {
      break; // the header block is over: values follow
    }
    pos = end + 1;
  }
  util::wipe(text);
  return ids;
}

} // namespace rpc
