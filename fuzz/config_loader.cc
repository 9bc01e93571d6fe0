// Fuzz target: the config loader (SPEC §4) on arbitrary TOML and JSON. The first byte picks
// the format (odd: JSON, even: TOML; the seeds start with "1" and "0"). Every error must be
// a §5.2 line with a non-empty <where> and <what>, there are never more than 20, and a
// failed load leaves the config untouched.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace moat::config;
  const Format fmt = (data[0] & 1) != 0 ? Format::json : Format::toml;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  Config cfg;
  cfg.name = "untouched";
  auto r = load_config_text(in, fmt, "/fuzz/a.toml", cfg);
  if (!r) {
    if (r.error().empty() || r.error().size() > 20) __builtin_trap();
    for (const auto& e : r.error()) {
      if (e.where.empty() || e.what.empty()) __builtin_trap();
      (void)e.format();
    }
    if (cfg.name != "untouched") __builtin_trap();
  }
  return 0;
}
