#include "audit/chain.hpp"

#include "util/error.hpp"

namespace audit {

namespace {

bool is_lower_hex(std::string_view s)
{
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// Where the hash member starts, if the line ends with a well-formed one.
std::optional<size_t> hash_member_at(std::string_view line)
{
  // The shortest sealed line is `{` + hash member + `}`, and something must
  // precede the hash member (it is never the only one).
  if (line.size() < k_hash_member_size + 3 || line.front() != '{' || line.back() != '}') {
    return std::nullopt;
  }
  const size_t member = line.size() - 1 - k_hash_member_size;
  const std::string_view hash_member = line.substr(member, k_hash_member_size);
  if (!hash_member.starts_with(k_hash_member_prefix) || hash_member.back() != '"'
      || !is_lower_hex(hash_member.substr(k_hash_member_prefix.size(), k_digest_hex_size))) {
    return std::nullopt;
  }
  return member;
}

} // namespace

std::string seal_line(std::string_view body, std::string_view hash)
{
  if (body.size() < 2 || body.back() != '}') {
    throw util::Error(util::Errc::internal, "audit line body is not a JSON object");
  }
  if (hash.size() != k_digest_hex_size || !is_lower_hex(hash)) {
    throw util::Error(util::Errc::internal, "audit line hash is not 64 lowercase hex digits");
  }
  std::string line(body.substr(0, body.size() - 1));
  line.reserve(body.size() + k_hash_member_size);
  line += k_hash_member_prefix;
  line += hash;
  line += "\"}";
  return line;
}

std::string seal_line(std::string_view body)
{
  return seal_line(body, sha256_hex(body));
}

std::optional<SealedLine> unseal_line(std::string_view line)
{
  const auto member = hash_member_at(line);
  if (!member) {
    return std::nullopt;
  }
  std::string body(line.substr(0, *member));
  body += '}';
  return SealedLine{std::move(body), line.substr(*member + k_hash_member_prefix.size(), k_digest_hex_size)};
}

bool has_hash_member(std::string_view line)
{
  return hash_member_at(line).has_value();
}

std::optional<uint64_t> chained_seq(const nlohmann::json& entry)
{
  if (!entry.is_object() || !entry.contains("hash")) {
    return std::nullopt;
  }
  const auto seq = entry.find("seq");
  if (seq == entry.end() || !seq->is_number_unsigned()) {
    return std::nullopt;
  }
  return seq->get<uint64_t>();
}

std::string keyed_prev(const std::optional<std::string>& previous)
{
  if (!previous) {
    return std::string(k_genesis_prev);
  }
  if (const auto member = hash_member_at(*previous)) {
    return previous->substr(*member + k_hash_member_prefix.size(), k_digest_hex_size);
  }
  return sha256_hex(*previous);
}

} // namespace audit
