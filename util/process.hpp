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

// A pidfd for the process `pid` that started at `start_time`, or an empty fd
// when that process is gone (exited, or its pid now names another process).
// The pidfd becomes readable when the process exits. Throws util::Error
// (invalid_params) on a kernel without pidfd_open.
UniqueFd open_process(pid_t pid, uint64_t start_time);

} // namespace util
