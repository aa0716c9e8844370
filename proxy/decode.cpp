#include "proxy/decode.hpp"

#include <algorithm>
#include <cctype>
#include <string.h> // explicit_bzero

namespace proxy {

namespace {

std::string lower_trimmed(std::string_view s)
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// RFC 1950: CM 8 (deflate) and a header checksum that is a multiple of 31.
bool is_zlib_header(unsigned char cmf, unsigned char flg)
{
  return (cmf & 0x0f) == 8 && (cmf * 256 + flg) % 31 == 0;
}

constexpr size_t k_out_piece = 16 * 1024;

} // namespace

Coding body_coding(std::string_view content_encoding, std::string_view transfer_encoding)
{
  Coding found = Coding::identity;
  size_t applied = 0;
  bool unsupported = false;
  auto scan = [&](std::string_view list, bool transfer) {
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      const std::string token = lower_trimmed(list.substr(start, end - start));
      start = end + 1;
      if (token.empty() || token == "identity" || (transfer && token == "chunked")) {
        continue;
      }
      ++applied;
      if (token == "gzip" || token == "x-gzip") {
        found = Coding::gzip;
      } else if (token == "deflate") {
        found = Coding::deflate;
      } else {
        unsupported = true;
      }
    }
  };
  scan(content_encoding, false);
  scan(transfer_encoding, true);
  if (unsupported || applied > 1) {
    return Coding::unsupported;
  }
  return found;
}

Decoder::Decoder(Coding coding) : m_coding(coding) {}

Decoder::~Decoder()
{
  if (m_started) {
    inflateEnd(&m_z);
  }
  explicit_bzero(m_head.data(), m_head.size());
}

bool Decoder::start()
{
  int window = 15 + 32; // gzip: zlib detects the gzip (or zlib) header itself
  if (m_coding == Coding::deflate) {
    // HTTP's "deflate" is zlib-wrapped (RFC 9110 8.4.1.2), but servers have
    // long sent raw deflate too: the first two bytes tell them apart.
    window = is_zlib_header(static_cast<unsigned char>(m_head[0]), static_cast<unsigned char>(m_head[1])) ? 15 : -15;
  }
  if (inflateInit2(&m_z, window) != Z_OK) {
    m_error = "zlib could not start";
    return false;
  }
  m_started = true;
  return true;
}

bool Decoder::feed(std::string_view in, std::string& out)
{
  if (!m_error.empty()) {
    return false;
  }
  if (!m_started) {
    m_head.append(in);
    if (m_head.size() < 2) {
      return true;
    }
    if (!start()) {
      return false;
    }
    std::string head = std::move(m_head);
    m_head.clear();
    const bool ok = inflate_all(head, out);
    explicit_bzero(head.data(), head.size());
    return ok;
  }
  return inflate_all(in, out);
}

bool Decoder::inflate_all(std::string_view in, std::string& out)
{
  m_z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  m_z.avail_in = static_cast<uInt>(in.size());
  while (m_z.avail_in > 0) {
    if (m_ended) {
      // More after the end: another gzip member, or trailing bytes that are
      // dropped (they are not a body any client could decode either).
      if (m_coding != Coding::gzip || m_z.next_in[0] != 0x1f || inflateReset(&m_z) != Z_OK) {
        m_z.avail_in = 0;
        break;
      }
      m_ended = false;
    }
    const size_t before = out.size();
    out.resize(before + k_out_piece);
    m_z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    m_z.avail_out = static_cast<uInt>(k_out_piece);
    const int rc = inflate(&m_z, Z_NO_FLUSH);
    out.resize(before + k_out_piece - m_z.avail_out);
    if (rc == Z_STREAM_END) {
      m_ended = true;
    } else if (rc == Z_BUF_ERROR && m_z.avail_out > 0) {
      break; // needs more input
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      m_error = std::string("the upstream's body is not valid ") + (m_coding == Coding::gzip ? "gzip" : "deflate")
                + (m_z.msg ? std::string(": ") + m_z.msg : std::string());
      return false;
    }
  }
  // Output space may still hold decoded bytes: drain it.
  while (m_started && !m_ended && m_error.empty()) {
    const size_t before = out.size();
    out.resize(before + k_out_piece);
    m_z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    m_z.avail_out = static_cast<uInt>(k_out_piece);
    const int rc = inflate(&m_z, Z_NO_FLUSH);
    const size_t produced = k_out_piece - m_z.avail_out;
    out.resize(before + produced);
    if (rc == Z_STREAM_END) {
      m_ended = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      m_error = "the upstream's body is not valid compressed data";
      return false;
    }
    if (produced == 0) {
      break;
    }
  }
  return true;
}

bool Decoder::finish()
{
  if (!m_error.empty()) {
    return false;
  }
  if (!m_started) {
    if (m_head.empty()) {
      return true; // an empty body
    }
    m_error = "the upstream's body ended inside the compressed stream";
    return false;
  }
  if (!m_ended) {
    m_error = "the upstream's body ended inside the compressed stream";
    return false;
  }
  return true;
}

} // namespace proxy
