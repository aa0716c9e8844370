#include "proxy/transfer_head.hpp"

#include "proxy/connection.hpp"
#include "proxy/rewrite.hpp"

namespace proxy {

ResponseHead response_head(const HeaderList& headers, int status, const RequestShape& req,
                           const std::shared_ptr<const Needles>& needles)
{
  ResponseHead head;
  http::response<http::empty_body> res;
  res.version(req.version);
  res.result(static_cast<unsigned>(status));
  std::vector<std::string> connection_named;
  for (const auto& [name, value] : headers) {
    if (beast::iequals(name, "connection")) {
      for (const auto& token : http::token_list{value}) {
        connection_named.emplace_back(token);
      }
    }
  }
  const bool is_head = req.head;
  head.no_body = is_head || status == 204 || status == 304;
  if (!head.no_body) {
    std::string content_encoding;
    std::string transfer_encoding;
    for (const auto& [name, value] : headers) {
      if (beast::iequals(name, "content-encoding")) {
        content_encoding += (content_encoding.empty() ? "" : ",") + value;
      } else if (beast::iequals(name, "transfer-encoding")) {
        transfer_encoding += (transfer_encoding.empty() ? "" : ",") + value;
      }
    }
    const Coding coding = body_coding(content_encoding, transfer_encoding);
    if (coding == Coding::unsupported) {
      head.refused = refusal(502, "upstream_encoding",
                             "the upstream answered with a coding the proxy cannot decode to scrub (Content-Encoding: "
                               + scrub(content_encoding, needles) + ", Transfer-Encoding: "
                               + scrub(transfer_encoding, needles) + ")",
                             "the upstream ignores Accept-Encoding: identity; point base_url at an endpoint that "
                             "honours it, or one that sends gzip or deflate");
      return head;
    }
    if (coding != Coding::identity) {
      head.decode = coding;
    }
  }
  for (const auto& [name, value] : headers) {
    bool drop = is_hop_by_hop(name) || (head.decode && beast::iequals(name, "content-encoding"));
    for (const auto& n : connection_named) {
      drop = drop || beast::iequals(name, n);
    }
    if (is_head && beast::iequals(name, "content-length")) {
      drop = false; // a HEAD answer keeps the length of the GET it describes
    }
    if (!drop) {
      res.insert(scrub(name, needles), scrub(value, needles));
    }
  }
  head.keep_alive = req.keep_alive;
  if (!head.no_body) {
    if (req.version >= 11) {
      res.chunked(true);
      head.chunked = true;
    } else {
      head.keep_alive = false; // HTTP/1.0: the body ends when the connection does
    }
  }
  res.keep_alive(head.keep_alive);
  http::response_serializer<http::empty_body> sr{res};
  sr.split(true);
  beast::error_code ec;
  while (!ec && !sr.is_header_done()) {
    sr.next(ec, [&](beast::error_code&, const auto& buffers) {
      for (const auto b : beast::buffers_range_ref(buffers)) {
        head.bytes.append(static_cast<const char*>(b.data()), b.size());
      }
      sr.consume(beast::buffer_bytes(buffers));
    });
  }
  head.serialized = !ec;
  return head;
}

} // namespace proxy
