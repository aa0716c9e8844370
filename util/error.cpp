#include "util/error.hpp"

#include <cerrno>
#include <cstring>

namespace util {

void throw_errno(const std::string& what, int err)
{
  std::string msg = std::strerror(err);
  if (!msg.empty()) {
    msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
  }
  throw Error(Errc::io, what + ": " + msg);
}

void throw_errno(const std::string& what)
{
  throw_errno(what, errno);
}

} // namespace util
