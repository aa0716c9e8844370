#pragma once
// Response bodies in a coding the proxy did not ask for. It sends
// Accept-Encoding: identity so that scrubbing sees the body as the upstream
// wrote it; an upstream that compresses anyway is decoded here (zlib: gzip
// and deflate) and scrubbed, and any other coding is refused, never passed
// on unscrubbed. Pure; one Decoder per body, any thread.

#include <zlib.h>

#include <string>
#include <string_view>

namespace proxy {

enum class Coding { identity, gzip, deflate, unsupported };

// The coding of a body from its Content-Encoding and Transfer-Encoding header
// values (either may be empty): identity when both name nothing but
// identity (and chunked, which the HTTP client already undid); gzip or deflate
// when exactly one such coding was applied; unsupported otherwise (br, zstd,
// compress, unknown names, or codings stacked).
Coding body_coding(std::string_view content_encoding, std::string_view transfer_encoding);

class Decoder
{
public:
  explicit Decoder(Coding coding); // gzip or deflate
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Appends the decoded bytes to `out`; false on corrupt input (error() says why).
  bool feed(std::string_view in, std::string& out);
  // False when the body ended in the middle of a stream.
  bool finish();
  const std::string& error() const { return m_error; }

private:
  bool start(); // inflateInit2 once the first bytes tell zlib-wrapped from raw deflate
  bool inflate_all(std::string_view in, std::string& out);

  Coding m_coding;
  z_stream m_z{};
  bool m_started = false;
  bool m_ended = false; // the last stream ended; only another gzip member may follow
  std::string m_head;   // deflate: the first bytes, until they say which framing
  std::string m_error;
};

} // namespace proxy
