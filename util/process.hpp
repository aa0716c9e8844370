#pragma once
// Naming a process without the pid-reuse race: a pid plus its start time
// (field 22 of /proc/PID/stat, clock ticks since boot) identifies one process
// for the life of the machine, and a pidfd keeps referring to it.

#include "util/file.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace util {

// The start time of `pid`, or nullopt when there is no such process.
std::optional<uint64_t> process_start_time(pid_t pid);

// The parent of `pid` (field 4 of /proc/PID/stat), or nullopt when there is
// no such process.
std::optional<pid_t> process_parent(pid_t pid);

// The process a lease bound to "the parent" should follow. A shell runs part
// of a command line in a fork of itself that does not exec (the subshell of
// `$(a | b)`, a pipeline stage, `( ... )`), and that fork exits as soon as the
// command does; so from `pid` this walks up while `pid` is such a fork of its
// parent: the same executable and command line, and the same argument and
// environment addresses (an exec'd program gets new ones, ASLR; a fork keeps
// them). Stops at the first process that is not, or where /proc cannot tell.
pid_t unforked_ancestor(pid_t pid);

// A pidfd for the process `pid` that started at `start_time`, or an empty fd
// when that process is gone (exited, or its pid now names another process).
// The pidfd becomes readable when the process exits. Throws util::Error
// (invalid_params) on a kernel without pidfd_open.
UniqueFd open_process(pid_t pid, uint64_t start_time);

} // namespace util
