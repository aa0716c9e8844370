#include "cmd/commands.hpp"
#include "rotation/reaper.hpp"

int main(int argc, char** argv)
{
  // The daemon runs each rotation hook under this binary, re-executed as the
  // hook's reaper (rotation/reaper.hpp).
  if (const auto reaper_exit = rotation::run_reaper_if_invoked(argc, argv)) {
    return *reaper_exit;
  }
  return cmd::run(argc, argv);
}
