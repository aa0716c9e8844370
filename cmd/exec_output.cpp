// The masking glue of `secrets exec`: the child's stdout and stderr through a
// MaskFilter (cmd/mask.hpp) each, and the leaks the filters saw (cmd/exec.hpp).
#include "cmd/exec.hpp"

#include "util/file.hpp"

#include <string.h> // explicit_bzero
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace cmd {

namespace {

void write_all(int fd, std::string_view data)
{
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; // our reader went away (EPIPE): drop, the child keeps running
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

} // namespace

MaskedStream::MaskedStream(util::UniqueFd from, int to, const char* name, const std::vector<HeldLease>& held)
  : m_from(std::move(from)), m_to(to), m_name(name)
{
  std::vector<std::string> values;
  values.reserve(held.size()); // no reallocation leaving unwiped copies
  for (const auto& h : held) {
    values.push_back(h.value);
  }
  m_filter = std::make_unique<MaskFilter>(values);
  for (auto& v : values) {
    util::wipe(v);
  }
}

void MaskedStream::read_some()
{
  char buf[65536];
  const ssize_t n = ::read(m_from.get(), buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
    return;
  }
  if (n <= 0) {
    close();
    return;
  }
  std::string out_text = m_filter->feed(std::string_view(buf, static_cast<size_t>(n)));
  explicit_bzero(buf, static_cast<size_t>(n));
  write_all(m_to, out_text);
}

void MaskedStream::close()
{
  if (m_filter && m_from) {
    write_all(m_to, m_filter->finish());
  }
  m_from.reset();
}

void MaskedStream::report_leaks(std::vector<HeldLease>& held, const std::string& on_leak)
{
  if (!m_filter) {
    return;
  }
  for (const size_t i : m_filter->take_hits()) {
    HeldLease& h = held.at(i);
    if (h.leak_reported) {
      continue;
    }
    h.leak_reported = true;
    if (on_leak != "warn") { // warn is audit-only: the child's stderr stays its own
      std::fprintf(stderr, "secrets: the value of %s (lease %s) appeared on the command's %s; it was concealed (%s)\n",
                   h.name.c_str(), h.lease_id.c_str(), m_name, on_leak.c_str());
    }
    try {
      call("secrets.reportLeak", {{"lease_id", h.lease_id}, {"stream", m_name}, {"action", on_leak}});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "secrets: could not report the leak: %s\n", e.what());
    }
  }
}

} // namespace cmd
