#pragma once
// Shared by the fuzz targets (one libFuzzer entry point per fuzz_*.cpp).
// A target checks a property of the code under test and calls check() on it:
// a violated property aborts, which libFuzzer reports as a crash, and
// replay_main (the ctest replay of fuzz/regressions and fuzz/corpus) fails.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size)
{
  return {reinterpret_cast<const char*>(data), size};
}

inline void check(bool ok, const char* what)
{
  if (!ok) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

} // namespace fuzz
