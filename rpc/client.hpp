#pragma once
// A blocking JSON-RPC client over the daemon's Unix socket, for the CLI.
// Plain POSIX sockets: the CLI is short-lived and its start time matters.
//
// Throws util::Error(Errc::daemon_down) with a "secrets serve &" fix when no
// daemon listens, rpc::RemoteError for an error reply.

#include "rpc/protocol.hpp"
#include "util/file.hpp"

#include <chrono>
#include <string>

namespace rpc {

class Client
{
public:
  explicit Client(const std::string& socket_path);

  // Sends one request and waits for its reply; returns "result".
  json call(const std::string& method, const json& params = json::object());
  // Sends a request without waiting (secrets.watch), then read_message() reads
  // the replies and notifications as they come. timeout < 0 waits forever;
  // returns null json on timeout, throws on EOF.
  void send(const std::string& method, const json& params);
  json read_message(std::chrono::milliseconds timeout = std::chrono::milliseconds{-1});
  int fd() const { return m_fd.get(); }

private:
  std::string m_socket_path;
  util::UniqueFd m_fd;
  std::string m_buffer;
  int m_next_id = 1;
};

} // namespace rpc
