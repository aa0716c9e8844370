#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "rotation/reaper.hpp"

int main(int argc, char** argv)
{
  // rotation::run_hook re-executes this binary as the hook's reaper.
  if (const auto reaper_exit = rotation::run_reaper_if_invoked(argc, argv)) {
    return *reaper_exit;
  }
  return doctest::Context(argc, argv).run();
}
