// secrets.audit, secrets.verifyAudit
#include "daemon/state.hpp"
#include "util/error.hpp"

namespace server {

namespace {

json tail(State& s, const Request& r)
{
  const int64_t n = optional_int(r.params, "tail", 0);
  if (n < 0) {
    throw util::Error(util::Errc::invalid_params, "invalid params: tail must be 0 (all) or a positive count");
  }
  // Lines appended so far must be on disk before we read the file back.
  s.log.wait_durable(s.log.last_seq());
  json entries = json::array();
  for (auto& e : audit::tail(s.paths.audit, static_cast<size_t>(n))) {
    entries.push_back(std::move(e));
  }
  return {{"entries", std::move(entries)}};
}

json verify(State& s, const Request&)
{
  s.log.wait_durable(s.log.last_seq());
  const auto result = audit::verify_file(s.paths.audit);
  json out = {{"ok", result.ok}, {"entries", result.entries}, {"message", result.message}};
  if (result.first_bad_line) {
    out["first_bad_line"] = *result.first_bad_line;
  }
  if (result.torn_tail) {
    out["torn_tail"] = true;
  }
  return out;
}

} // namespace

void add_audit_methods(MethodTable& table)
{
  table.emplace("secrets.audit", Method{tail, nullptr});
  table.emplace("secrets.verifyAudit", Method{verify, nullptr});
}

} // namespace server
