#pragma once
// Internal to proxy/: the head the agent gets for an upstream response
// (transfer.cpp runs the transfer; this decides what its head says).
//
// - Headers: hop-by-hop ones and those the upstream's Connection header
//   names are dropped, and Content-Encoding when the body is decoded here;
//   every remaining name and value is scrubbed. A HEAD answer keeps its
//   Content-Length (that of the GET it describes).
// - Coding: the proxy asked for identity. A body in another coding would
//   hide the value from scrubbing, so it is decoded (gzip, deflate) or the
//   response is refused with a 502 (upstream_encoding); never passed on as is.
// - Framing: no body for HEAD, 204 and 304; chunked on HTTP/1.1; on
//   HTTP/1.0 the body ends with the connection, so it is not kept alive.
// Pure: no I/O, no state; safe on any thread. No Beast in this header, so
// that unit tests can call it (Beast is built with
// BOOST_BEAST_USE_STD_STRING_VIEW in proxy/ only).

#include "proxy/decode.hpp"
#include "proxy/scrub.hpp"
#include "proxy/server.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ResponseHead
{
  std::optional<Refusal> refused; // set: send this instead, nothing else below holds
  std::string bytes;              // the serialized head
  bool serialized = true;         // false if beast could not serialize it
  std::optional<Coding> decode;   // the body's coding, to decode before scrubbing
  bool no_body = false;
  bool chunked = false;
  bool keep_alive = true;
};

// What the head depends on in the agent's request.
struct RequestShape
{
  unsigned version = 11; // 10 or 11
  bool head = false;     // a HEAD request
  bool keep_alive = true;
};

// `headers`: the upstream's final response, in order; `status` >= 200.
ResponseHead response_head(const HeaderList& headers, int status, const RequestShape& req,
                           const std::shared_ptr<const Needles>& needles);

} // namespace proxy
