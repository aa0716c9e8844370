#include "rpc/client.hpp"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace rpc {

Client::Client(const std::string& socket_path) : m_socket_path(socket_path)
{
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    throw util::Error(util::Errc::io, "socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  m_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!m_fd) {
    util::throw_errno("failed to create a socket");
  }
  if (::connect(m_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      throw util::Error(util::Errc::daemon_down, "daemon not running: nothing listens on " + socket_path,
                        "secrets serve &");
    }
    throw util::Error(util::Errc::io,
                      "failed to connect to the daemon at " + socket_path + ": " + std::strerror(err),
                      "secrets status");
  }
  // Before anything is sent (an add carries a value): the daemon must be our
  // own uid, or root. Another user could have put a listener where a
  // socket_path or AGENT_SECRETS_SOCKET points (a shared /tmp, a stale config).
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(m_fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    util::throw_errno("failed to read the credentials of the daemon at " + socket_path);
  }
  if (cred.uid != ::geteuid() && cred.uid != 0) {
    m_fd.reset();
    throw util::Error(util::Errc::unauthorized,
                      "refusing to talk to " + socket_path + ": it is served by uid " + std::to_string(cred.uid)
                        + ", not by us (uid " + std::to_string(::geteuid()) + ") or root",
                      "check socket_path in config.json and AGENT_SECRETS_SOCKET, then: secrets serve &");
  }
}

void Client::send(const std::string& method, const json& params)
{
  json request = {{"jsonrpc", "2.0"}, {"method", method}, {"params", params}, {"id", m_next_id++}};
  // The params may carry a value (add) or a passphrase (unlock): the copies
  // made here are wiped on every way out (the caller wipes its own). Best
  // effort: a buffer the serializer outgrew is freed as it was.
  std::string line = request.dump();
  struct Wipe
  {
    std::string& line;
    json& params;
    ~Wipe()
    {
      util::wipe(line);
      for (auto& [key, v] : params.items()) {
        if (v.is_string()) {
          util::wipe(v.get_ref<std::string&>());
        }
      }
    }
  } wipe{line, request["params"]};
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::send(m_fd.get(), p, left, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to send to the daemon");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

json Client::read_message(std::chrono::milliseconds timeout)
{
  while (true) {
    if (const auto nl = m_buffer.find('\n'); nl != std::string::npos) {
      std::string line = m_buffer.substr(0, nl);
      m_buffer.erase(0, nl + 1);
      try {
        return json::parse(line);
      } catch (const json::exception&) {
        throw util::Error(util::Errc::internal, "the daemon sent a malformed reply");
      }
    }
    pollfd pfd{m_fd.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to wait for the daemon");
    }
    if (ready == 0) {
      return nullptr;
    }
    char buf[65536];
    const ssize_t n = ::recv(m_fd.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("failed to read from the daemon");
    }
    if (n == 0) {
      throw util::Error(util::Errc::io, "the daemon closed the connection", "secrets status");
    }
    m_buffer.append(buf, static_cast<size_t>(n));
  }
}

json Client::call(const std::string& method, const json& params)
{
  send(method, params);
  const int id = m_next_id - 1;
  while (true) {
    json reply = read_message();
    if (!reply.contains("id") || reply["id"] != id) {
      continue; // a notification on a watch connection
    }
    if (reply.contains("error")) {
      const auto& err = reply["error"];
      std::string fix;
      if (err.contains("data") && err["data"].is_object() && err["data"].contains("fix")) {
        fix = err["data"]["fix"].get<std::string>();
      }
      throw RemoteError(err.value("code", code::internal), err.value("message", "unknown error"), fix);
    }
    return reply.value("result", json::object());
  }
}

} // namespace rpc
