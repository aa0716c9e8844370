#pragma once
// The failure classes of the age test kit (c2sp.org/age "Test vectors"), so a
// caller can tell "wrong key" from "corrupted file" without parsing messages.
// Messages are lowercase and never carry key material or file contents.

#include <stdexcept>
#include <string>

namespace store::age {

enum class ErrorKind {
  no_match, // the header parses, but no identity unwraps any stanza
  hmac,     // a file key was unwrapped, but the header MAC is wrong
  header,   // malformed header or stanza, low-order share, lone-scrypt rule, work factor
  payload,  // the STREAM payload failed before a valid final chunk at EOF
  armor,    // malformed ASCII armor
  key,      // malformed identity or recipient string, or identity file
};

// "no match", "HMAC failure", "header failure", "payload failure", "armor failure", "key failure"
const char* to_string(ErrorKind kind);

class Error : public std::runtime_error
{
public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), m_kind(kind) {}

  ErrorKind kind() const { return m_kind; }

private:
  ErrorKind m_kind;
};

} // namespace store::age
