// cmd::parse_dotenv, the .env parser of `secrets import`.
// Properties: errors are util::Error(invalid_params) naming a line; every value
// parsed survives quote_env_value + parse_dotenv byte-exact (what `secrets env`
// writes, `secrets import` reads back).
#include "cmd/dotenv.hpp"
#include "fuzz/fuzz.hpp"
#include "util/error.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  std::vector<cmd::DotenvEntry> entries;
  try {
    entries = cmd::parse_dotenv(fuzz::as_text(data, size));
  } catch (const util::Error& e) {
    fuzz::check(e.code() == util::Errc::invalid_params, "parse_dotenv throws invalid_params");
    fuzz::check(std::string(e.what()).find("line ") != std::string::npos, "a parse error names its line");
    return 0;
  }
  for (const auto& entry : entries) {
    fuzz::check(entry.line >= 1, "an entry has a 1-based line");
    const auto back = cmd::parse_dotenv("K=" + cmd::quote_env_value(entry.value) + "\n");
    fuzz::check(back.size() == 1 && back[0].key == "K" && back[0].value == entry.value,
                "quote_env_value round-trips through parse_dotenv");
  }
  return 0;
}
