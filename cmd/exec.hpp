#pragma once
// The parts of `secrets exec` (cmd/exec.cpp documents the command and checks
// its flags): the leases it holds and watches (exec_leases.cpp), the masking
// of the child's output and the leaks it finds (exec_output.cpp), and the
// child itself (exec_runner.cpp). All run on exec's one thread.

#include "cmd/command.hpp"
#include "cmd/mask.hpp"
#include "cmd/project.hpp"
#include "util/duration.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmd {

using ExecClock = std::chrono::steady_clock;

struct ExecOptions
{
  std::string ttl;
  std::string client_id;
  std::string file;
  std::vector<std::string> secrets;
  std::vector<std::string> argv;
  bool no_masking = false;
  bool renew = false;
  std::string max_lifetime;
  std::string on_leak = "warn";
  std::string kill_grace = "5s";
};

// One lease exec holds. `value` is SECRET: wiped by wipe_all.
struct HeldLease
{
  std::string lease_id;
  std::string name;
  std::string env_var;
  std::string value;
  util::Duration ttl{};
  ExecClock::time_point cap; // the daemon renews it no further (max_lease_ttl from creation)
  bool leak_reported = false;
};

// ---- exec_leases.cpp

// Leases every secret of the project, each bound to this process (if exec
// dies, even by SIGKILL, its leases end). On any failure revokes the ones
// taken, wipes them and rethrows. The vector is reserved up front, so no
// reallocation leaves an unwiped copy of a value.
std::vector<HeldLease> take_leases(const Project& project, const ExecOptions& o, const std::string& client_id);
// Best effort: a lease that cannot be revoked still ends at its TTL.
void revoke_all(const std::vector<HeldLease>& held);
void wipe_all(std::vector<HeldLease>& held);
// Our environment with each lease's variable set to its value. SECRET: the
// caller wipes every entry.
std::vector<std::string> child_environment(const std::vector<HeldLease>& held);

// Why exec stopped the child: a lease ended, or (lease_id empty) the watch
// connection was lost.
struct LeaseEnded
{
  std::string lease_id;
  std::string name;
  std::string reason;
};

// exec's exit code for a lease that ended: denied (5) when it was revoked,
// killswitched or its secret deleted; error (1) otherwise.
int exit_for_reason(const std::string& reason);

// A secrets.watch connection on the held leases. Once the constructor has
// returned the daemon has registered the watch, so a lease that ends from
// then on is reported.
class LeaseWatch
{
public:
  // Throws util::Error or rpc::RemoteError when the daemon refuses or does not answer.
  explicit LeaseWatch(const std::vector<HeldLease>& held);
  // The connection's descriptor for poll; -1 once it is lost.
  int fd() const;
  // Reads what has arrived (and what came before the watch's reply): the
  // first held lease that ended, or a LeaseEnded with no lease_id once the
  // connection is lost; nullopt if neither.
  std::optional<LeaseEnded> read();

private:
  std::optional<LeaseEnded> ended(const json& message) const;

  const std::vector<HeldLease>& m_held;
  std::unique_ptr<rpc::Client> m_client;
  std::vector<json> m_early;
};

// --renew: at two thirds of the shortest TTL, renews each lease for its TTL
// again, as far as --max-lifetime and the daemon's max_lease_ttl allow. A
// lease that can be renewed no further is left to expire, which stops the child.
class Renewal
{
public:
  Renewal(const ExecOptions& o, std::vector<HeldLease>& held);
  // When renew() is due; nullopt without --renew or when nothing is left to renew.
  std::optional<ExecClock::time_point> due() const { return m_due; }
  void renew();

private:
  std::vector<HeldLease>& m_held;
  std::optional<ExecClock::time_point> m_due;
  ExecClock::time_point m_lifetime_end = ExecClock::time_point::max();
};

// ---- exec_output.cpp

// One masked stream: the child's pipe -> MaskFilter -> our descriptor.
class MaskedStream
{
public:
  MaskedStream() = default;
  MaskedStream(util::UniqueFd from, int to, const char* name, const std::vector<HeldLease>& held);

  bool open() const { return static_cast<bool>(m_from); }
  int fd() const { return m_from.get(); }
  // One read, masked and written on; closes the stream at EOF.
  void read_some();
  // Writes what the filter still holds and closes the pipe.
  void close();
  // --on-leak: reports each held value the filter concealed, once per lease.
  void report_leaks(std::vector<HeldLease>& held, const std::string& on_leak);

private:
  util::UniqueFd m_from;
  int m_to = -1;
  const char* m_name = "";
  std::unique_ptr<MaskFilter> m_filter;
};

// ---- exec_runner.cpp

// Runs the command with the leases in its environment until it ends (see
// cmd/exec.cpp); exec's exit code. Throws util::SpawnError when the command
// could not be started, other errors before it was.
int run_command(const ExecOptions& o, std::vector<HeldLease>& held, std::chrono::milliseconds kill_grace);

} // namespace cmd
