// Process-bound leases (issue 10): one pidfd per holder process, watched by
// Asio (readable when the process exits), however many leases it holds.
#include "daemon/state.hpp"
#include "util/process.hpp"

#include <spdlog/spdlog.h>

namespace server {

bool State::watch_holder(const lease::Lease& l, util::UniqueFd pidfd)
{
  const HolderKey key{l.bind_pid, l.bind_start};
  auto it = m_holders.find(key);
  if (it == m_holders.end()) {
    if (!pidfd) {
      pidfd = util::open_process(l.bind_pid, l.bind_start);
      if (!pidfd) {
        return false;
      }
    }
    it = m_holders.emplace(key, std::make_unique<Holder>(io, pidfd.release())).first;
    it->second->pidfd.async_wait(asio::posix::stream_descriptor::wait_read, [this, key](boost::system::error_code ec) {
      if (ec != asio::error::operation_aborted) {
        on_holder_exit(key);
      }
    });
  }
  it->second->leases.insert(l.id);
  return true;
}

void State::unwatch_holder(const lease::Lease& l)
{
  const auto it = m_holders.find({l.bind_pid, l.bind_start});
  if (it != m_holders.end() && it->second->leases.erase(l.id) != 0 && it->second->leases.empty()) {
    m_holders.erase(it); // closing the descriptor cancels its wait
  }
}

void State::on_holder_exit(const HolderKey& key)
{
  const auto it = m_holders.find(key);
  if (it == m_holders.end()) {
    return;
  }
  const std::set<std::string> ids = std::move(it->second->leases);
  m_holders.erase(it);
  std::vector<lease::Ended> ended;
  for (const auto& id : ids) {
    if (m_leases.find(id)) {
      ended.push_back(m_leases.revoke(id, lease::EndReason::holder_exited));
    }
  }
  spdlog::info("holder pid {} exited: {} leases ended", key.first, ended.size());
  leases_ended(ended, nullptr);
}

void State::rewatch_holders()
{
  std::vector<lease::Ended> ended;
  for (const auto& l : m_leases.snapshot()) {
    if (l.bind_pid != 0 && !watch_holder(l)) {
      ended.push_back(m_leases.revoke(l.id, lease::EndReason::holder_exited));
    }
  }
  leases_ended(ended, nullptr);
}

} // namespace server
