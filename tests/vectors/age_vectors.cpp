// Runs the C2SP CCTV age test kit (tests/vectors/age, see its README.md)
// against store::age: each vector names the expected result class and the
// SHA-256 of all plaintext released, including the prefix released before a
// payload failure. Post-quantum vectors are skipped: libsodium 1.0.18 has no
// ML-KEM. Exits non-zero on any failure, and if it found no vectors at all.

#include "store/age/age.hpp"
#include "util/file.hpp"

#include <sodium.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace age = store::age;
namespace fs = std::filesystem;

namespace {

// Vectors whose expectation we knowingly do not meet, with the reason. Empty:
// the two armor vectors that age 1.1.1 disagrees with (armor_empty_last_line,
// armor_whitespace_outside) follow the current spec and pass.
const std::map<std::string, std::string> k_expected_exceptions = {};

struct Vector
{
  std::string expect;
  std::optional<std::string> payload_sha256;
  std::vector<std::string> identities;
  std::vector<std::string> passphrases;
  bool armored = false;
  bool compressed = false;
  std::string body;
};

// "key: value" lines, an empty line, then the age file to EOF.
std::optional<Vector> parse_vector(const std::string& text)
{
  Vector v;
  size_t pos = 0;
  while (true) {
    const size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) {
      return std::nullopt;
    }
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) {
      break;
    }
    const size_t colon = line.find(": ");
    if (colon == std::string::npos) {
      return std::nullopt;
    }
    const std::string key = line.substr(0, colon);
    const std::string value = line.substr(colon + 2);
    if (key == "expect") {
      v.expect = value;
    } else if (key == "payload") {
      v.payload_sha256 = value;
    } else if (key == "identity") {
      v.identities.push_back(value);
    } else if (key == "passphrase") {
      v.passphrases.push_back(value);
    } else if (key == "armored") {
      v.armored = value == "yes";
    } else if (key == "compressed") {
      if (value != "zlib") {
        return std::nullopt;
      }
      v.compressed = true;
    }
    // Other keys ("file key", "comment", future ones) are informational.
  }
  v.body = text.substr(pos);
  return v;
}

std::optional<std::string> inflate_zlib(const std::string& in)
{
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) {
    return std::nullopt;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return std::nullopt;
  }
  return out;
}

std::string sha256_hex(const std::string& data)
{
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[2 * sizeof(digest) + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return hex;
}

struct Outcome
{
  std::string result; // "success" or the failure class
  std::string message;
  std::string released;
};

Outcome run(const Vector& v)
{
  Outcome outcome;
  try {
    age::Keys keys;
    for (const auto& id : v.identities) {
      keys.identities.push_back(age::X25519Identity::parse(id));
    }
    keys.passphrases = v.passphrases;
    const std::string file = v.compressed ? inflate_zlib(v.body).value() : v.body;
    // Like the Go test kit, armored vectors go through the armor reader
    // explicitly: armor_garbage_leading must fail as armor, not as a binary
    // header that happens to start with "garbage".
    if (v.armored) {
      age::decrypt_binary_to(age::dearmor(file), keys, outcome.released);
    } else {
      age::decrypt_to(file, keys, outcome.released);
    }
    outcome.result = "success";
  } catch (const age::Error& e) {
    outcome.result = age::to_string(e.kind());
    outcome.message = e.what();
  } catch (const std::exception& e) {
    outcome.result = "exception";
    outcome.message = e.what();
  }
  return outcome;
}

bool is_post_quantum(const Vector& v)
{
  return std::any_of(v.identities.begin(), v.identities.end(),
                     [](const std::string& id) { return id.starts_with("AGE-SECRET-KEY-PQ-"); });
}

} // namespace

int main(int argc, char** argv)
{
  if (argc != 2) {
    std::fprintf(stderr, "usage: age_vectors VECTORS_DIR\n");
    return 2;
  }
  if (sodium_init() < 0) {
    std::fprintf(stderr, "age_vectors: error: libsodium failed to initialize\n");
    return 2;
  }
  const fs::path dir = argv[1];
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    // The vectors have no extension; README.md is the only other file.
    if (entry.is_regular_file() && !entry.path().has_extension()) {
      files.push_back(entry.path());
    }
  }
  if (ec) {
    std::fprintf(stderr, "age_vectors: error: cannot read %s: %s\n", dir.c_str(), ec.message().c_str());
    return 2;
  }
  std::sort(files.begin(), files.end());

  std::map<std::string, std::pair<int, int>> per_class;  // expected class -> passed, failed
  std::map<std::string, std::pair<int, int>> per_subset; // "binary" / "armored" -> passed, failed
  int passed = 0;
  int failed = 0;
  int skipped = 0;
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    const auto vector = parse_vector(util::read_file(path.string()));
    if (!vector || vector->expect.empty()) {
      std::printf("FAIL %s: cannot parse the vector file\n", name.c_str());
      ++failed;
      continue;
    }
    if (is_post_quantum(*vector)) {
      ++skipped;
      continue;
    }
    const Outcome outcome = run(*vector);
    std::string problem;
    if (outcome.result != vector->expect) {
      problem = "expected " + vector->expect + ", got " + outcome.result + " (" + outcome.message + ")";
    } else if (vector->payload_sha256 && sha256_hex(outcome.released) != *vector->payload_sha256) {
      problem = "released plaintext (" + std::to_string(outcome.released.size()) + " bytes) has the wrong hash";
    } else if (!vector->payload_sha256 && !outcome.released.empty()) {
      problem = "released plaintext although the vector has no payload";
    }
    const auto exception = k_expected_exceptions.find(name);
    auto& counts = per_class[vector->expect];
    auto& subset = per_subset[vector->armored ? "armored" : "binary"];
    if (problem.empty()) {
      if (exception != k_expected_exceptions.end()) {
        std::printf("FAIL %s: listed as an expected exception but passes; remove it\n", name.c_str());
        ++counts.second;
        ++subset.second;
        ++failed;
      } else {
        ++counts.first;
        ++subset.first;
        ++passed;
      }
    } else if (exception != k_expected_exceptions.end()) {
      std::printf("SKIP %s: %s (expected exception: %s)\n", name.c_str(), problem.c_str(),
                  exception->second.c_str());
      ++skipped;
    } else {
      std::printf("FAIL %s: %s\n", name.c_str(), problem.c_str());
      ++counts.second;
      ++subset.second;
      ++failed;
    }
  }

  for (const auto& [expect, counts] : per_class) {
    std::printf("%-16s %3d passed, %d failed\n", expect.c_str(), counts.first, counts.second);
  }
  for (const auto& [name, counts] : per_subset) {
    std::printf("%-16s %3d passed, %d failed\n", (name + " files").c_str(), counts.first, counts.second);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (passed + failed == 0) {
    std::fprintf(stderr, "age_vectors: error: no vectors found in %s\n", dir.c_str());
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
