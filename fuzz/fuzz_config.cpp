// config::parse, config.json.
// Properties: errors are util::Error(invalid_params) with a fix; a config
// that parses prints (to_json) as JSON that parses back to the same Config.
#include "config/config.hpp"
#include "fuzz/fuzz.hpp"
#include "util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
  static const util::Paths paths = util::paths_for("/nonexistent/agent-secrets-fuzz");
  config::Config cfg;
  try {
    cfg = config::parse(fuzz::as_text(data, size), paths, paths.config);
  } catch (const util::Error& e) {
    fuzz::check(e.code() == util::Errc::invalid_params, "config::parse throws invalid_params");
    fuzz::check(!e.fix().empty(), "a config error has a fix");
    return 0;
  }
  const std::string printed = config::to_json(cfg).dump();
  config::Config back;
  try {
    back = config::parse(printed, paths, paths.config);
  } catch (const util::Error&) {
    fuzz::check(false, "config::parse accepts to_json's output");
  }
  fuzz::check(back == cfg, "config::parse(to_json(c)) == c");
  return 0;
}
