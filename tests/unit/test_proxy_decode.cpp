#include "proxy/decode.hpp"

#include <doctest/doctest.h>

#include <zlib.h>

#include <string>

using namespace proxy;

namespace {

// window: 31 gzip, 15 zlib, -15 raw deflate.
std::string compress(const std::string& data, int window)
{
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string decode(Coding coding, const std::string& body, size_t piece, bool* ok = nullptr)
{
  Decoder d(coding);
  std::string out;
  bool good = true;
  for (size_t i = 0; i < body.size() && good; i += piece) {
    good = d.feed(std::string_view(body).substr(i, piece), out);
  }
  good = good && d.finish();
  if (ok) {
    *ok = good;
  } else {
    CHECK(good);
  }
  return out;
}

std::string sample()
{
  std::string s;
  for (int i = 0; i < 20000; ++i) {
    s += "{\"i\":" + std::to_string(i * 7919 % 10007) + ",\"key\":\"sk-live-REAL\"}\n";
  }
  return s;
}

} // namespace

TEST_CASE("proxy: the body's coding from its headers")
{
  CHECK(body_coding("", "") == Coding::identity);
  CHECK(body_coding("identity", "chunked") == Coding::identity);
  CHECK(body_coding("gzip", "") == Coding::gzip);
  CHECK(body_coding(" X-GZip ", "chunked") == Coding::gzip);
  CHECK(body_coding("Deflate", "") == Coding::deflate);
  CHECK(body_coding("", "gzip, chunked") == Coding::gzip);
  CHECK(body_coding("br", "") == Coding::unsupported);
  CHECK(body_coding("zstd", "") == Coding::unsupported);
  CHECK(body_coding("gzip, gzip", "") == Coding::unsupported);
  CHECK(body_coding("gzip", "gzip, chunked") == Coding::unsupported);
  CHECK(body_coding("compress", "") == Coding::unsupported);
  CHECK(body_coding("", "bogus") == Coding::unsupported);
}

TEST_CASE("proxy: gzip, zlib and raw deflate bodies decode in any pieces")
{
  const std::string data = sample();
  for (const auto& [coding, window] : {std::pair{Coding::gzip, 31}, {Coding::gzip, 15}, {Coding::deflate, 15},
                                       {Coding::deflate, -15}}) {
    const std::string body = compress(data, window);
    REQUIRE(body.size() < data.size() / 4);
    for (size_t piece : {size_t{1}, size_t{2}, size_t{777}, body.size()}) {
      CAPTURE(window);
      CAPTURE(piece);
      CHECK(decode(coding, body, piece) == data);
    }
  }
  // gzip members one after the other (RFC 1952 2.2) are one body.
  CHECK(decode(Coding::gzip, compress("first ", 31) + compress("second", 31), 5) == "first second");
  // an empty body is fine
  CHECK(decode(Coding::gzip, "", 1).empty());
}

TEST_CASE("proxy: corrupt or cut compressed bodies fail")
{
  const std::string body = compress(sample(), 31);
  bool ok = true;
  decode(Coding::gzip, body.substr(0, body.size() / 2), 100, &ok);
  CHECK_FALSE(ok); // cut short
  std::string corrupt = body;
  for (size_t i = 20; i < 60; ++i) {
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  }
  decode(Coding::gzip, corrupt, 100, &ok);
  CHECK_FALSE(ok);
  decode(Coding::gzip, "plain text, not gzip at all", 3, &ok);
  CHECK_FALSE(ok);
  decode(Coding::deflate, "x", 1, &ok);
  CHECK_FALSE(ok);
}
