#pragma once
// The daemon's own failures (util/error.hpp), valued as their JSON-RPC codes
// of DESIGN.md section 4. They are the daemon's because only the daemon
// decides them: the killswitch's state lives in server::State, and a
// rotation fails as the daemon reports it (rotation/ only runs the hook and
// says how it ended). The store's lock is the store's: store/identity.hpp.

#include "util/error.hpp"

namespace server::errc {

inline constexpr util::Errc rotation_failed = util::layer_errc(-32003);    // "rotation_failed"
inline constexpr util::Errc killswitch_tripped = util::layer_errc(-32011); // "killswitch_tripped"

} // namespace server::errc
