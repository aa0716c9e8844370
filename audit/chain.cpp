#include "audit/chain.hpp"

#include "util/error.hpp"

#include <sodium.h>

namespace audit {

namespace {

void ensure_sodium()
{
  // sodium_init is idempotent; a function-local static makes the first call
  // thread-safe without a separate once_flag.
  static const bool initialized = sodium_init() >= 0;
  if (!initialized) {
    throw util::Error(util::Errc::internal, "failed to initialize libsodium");
  }
}

bool is_lower_hex(std::string_view s)
{
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

} // namespace

std::string sha256_hex(std::string_view data)
{
  ensure_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * sizeof(digest));
  for (const unsigned char byte : digest) {
    hex += k_digits[byte >> 4];
    hex += k_digits[byte & 0x0f];
  }
  return hex;
}

std::string seal_line(std::string_view body)
{
  if (body.size() < 2 || body.back() != '}') {
    throw util::Error(util::Errc::internal, "audit line body is not a JSON object");
  }
  std::string line(body.substr(0, body.size() - 1));
  line.reserve(body.size() + k_hash_member_size);
  line += k_hash_member_prefix;
  line += sha256_hex(body);
  line += "\"}";
  return line;
}

std::optional<SealedLine> unseal_line(std::string_view line)
{
  // The shortest sealed line is `{` + hash member + `}`, and something must
  // precede the hash member (it is never the only one).
  if (line.size() < k_hash_member_size + 3 || line.front() != '{' || line.back() != '}') {
    return std::nullopt;
  }
  const size_t member = line.size() - 1 - k_hash_member_size;
  const std::string_view hash_member = line.substr(member, k_hash_member_size);
  if (!hash_member.starts_with(k_hash_member_prefix) || hash_member.back() != '"') {
    return std::nullopt;
  }
  const std::string_view hash = hash_member.substr(k_hash_member_prefix.size(), k_digest_hex_size);
  if (!is_lower_hex(hash)) {
    return std::nullopt;
  }
  std::string body(line.substr(0, member));
  body += '}';
  return SealedLine{std::move(body), hash};
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

} // namespace audit
