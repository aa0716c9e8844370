#pragma once
// The hash chain of the audit log (DESIGN.md section 6), on bytes only.
//
// A line is a compact JSON object whose last two members are
//   ..., "prev":"<64 hex>", "hash":"<64 hex>"}
// where prev is SHA-256 of the previous line's bytes (without its '\n') and
// hash is SHA-256 of this line with the `,"hash":"<64 hex>"` member removed.
// Because hash is always last and has a fixed length, a verifier removes it
// textually and never re-serializes: JSON serialization is not byte-stable
// (key order, escapes, number formats differ between writers and versions).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace audit {

// prev of a line with no line before it.
inline constexpr std::string_view k_genesis_prev =
  "0000000000000000000000000000000000000000000000000000000000000000";
inline constexpr size_t k_digest_hex_size = 64;
// `,"hash":"` + 64 hex + `"`: what seal_line inserts before the closing brace.
inline constexpr std::string_view k_hash_member_prefix = ",\"hash\":\"";
inline constexpr size_t k_hash_member_size = k_hash_member_prefix.size() + k_digest_hex_size + 1;

// Lowercase hex SHA-256 (libsodium's crypto_hash_sha256).
std::string sha256_hex(std::string_view data);

// `body` is a compact JSON object, ending in '}', without a hash member.
// Returns the line with `,"hash":"<sha256_hex(body)>"` appended as its last member.
std::string seal_line(std::string_view body);

struct SealedLine
{
  std::string body;      // the line without its hash member: the bytes that were hashed
  std::string_view hash; // the hash the line claims (a view into the line)
};

// Splits a line that ends with a well-formed hash member (64 lowercase hex);
// nullopt otherwise. Does not check the hash.
std::optional<SealedLine> unseal_line(std::string_view line);

// The seq of a parsed line written by us (one carrying hash and an unsigned
// seq); nullopt for a Go line or anything else.
std::optional<uint64_t> chained_seq(const nlohmann::json& entry);

} // namespace audit
