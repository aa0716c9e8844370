#pragma once
// The chain of the audit log (DESIGN.md section 6), on bytes only.
//
// A line is a compact JSON object whose last two members are
//   ..., "prev":"<64 hex>", "hash":"<64 hex>"}
// and its body is the line with the `,"hash":"<64 hex>"` member removed.
// Three kinds of line exist in one file, in this order:
//  - Go lines (the Go daemon): no seq, prev or hash.
//  - plain lines (ours before the chain was keyed): hash = SHA-256(body),
//    prev = SHA-256 of the previous line's bytes (without its '\n').
//  - keyed lines: hash = HMAC-SHA-256(key, body) (key.hpp), prev = the
//    previous line's hash member, so that each MAC covers the one before it
//    and the chain is keyed end to end. After a Go line, prev is SHA-256 of
//    its bytes.
// The first line's prev is 64 zeros. Because hash is always last and has a
// fixed length, a verifier removes it textually and never re-serializes:
// JSON serialization is not byte-stable (key order, escapes, number formats
// differ between writers and versions).

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
// Returns the line with `,"hash":"<hash>"` appended as its last member;
// `hash` is 64 lowercase hex digits. The one-argument form seals a plain
// line (hash = sha256_hex(body)).
std::string seal_line(std::string_view body, std::string_view hash);
std::string seal_line(std::string_view body);

struct SealedLine
{
  std::string body;      // the line without its hash member: the bytes that were hashed
  std::string_view hash; // the hash the line claims (a view into the line)
};

// Splits a line that ends with a well-formed hash member (64 lowercase hex);
// nullopt otherwise. Does not check the hash.
std::optional<SealedLine> unseal_line(std::string_view line);

// Whether the line ends with a well-formed hash member: a cheap test that
// skips Go lines without parsing them.
bool has_hash_member(std::string_view line);

// The seq of a parsed line written by us (one carrying hash and an unsigned
// seq); nullopt for a Go line or anything else.
std::optional<uint64_t> chained_seq(const nlohmann::json& entry);

// The prev a keyed line carries after `previous` (the previous line's bytes,
// or nullopt at the start of the file).
std::string keyed_prev(const std::optional<std::string>& previous);

} // namespace audit
