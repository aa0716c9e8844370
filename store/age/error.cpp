#include "store/age/error.hpp"

namespace store::age {

const char* to_string(ErrorKind kind)
{
  switch (kind) {
  case ErrorKind::no_match:
    return "no match";
  case ErrorKind::hmac:
    return "HMAC failure";
  case ErrorKind::header:
    return "header failure";
  case ErrorKind::payload:
    return "payload failure";
  case ErrorKind::armor:
    return "armor failure";
  case ErrorKind::key:
    return "key failure";
  }
  return "unknown failure";
}

} // namespace store::age
