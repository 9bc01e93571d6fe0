#pragma once
// Config files (SPEC §4): TOML, or JSON when the name ends in ".json", one schema for both.
// Parsing is strict (§4.1): unknown and duplicate keys, wrong types, durations without a
// unit and out-of-range values are errors, each a §5.2 line
// `FILE:LINE:COL: key.path: what[; hint]`, collected up to 20. Keys of the SPEC that this
// build does not implement are refused by name ("not supported by this moat build"), never
// silently ignored: several of them (tls.*, secrets.*, rate.*, hardening.*) weaken or
// strengthen isolation, so ignoring one would run a gateway other than the one asked for.
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "config/config.h"

namespace moat::config {

enum class Format { toml, json };

/// Applies `text` over `cfg` (defaults already there). Errors are §5.2 lines naming
/// origin:line:col. On error `cfg` is left unchanged (nothing half-applied). Relative
/// paths in the file are taken relative to the directory of `origin` when it names one.
Result<void, std::vector<UserError>> load_config_text(std::string_view text, Format fmt, std::string_view origin,
                                                      Config& cfg);

/// Config and rules files are a few KiB; 16 MiB leaves room for generated rule sets while
/// refusing /dev/zero or a log file given by mistake (read_bounded_file()).
inline constexpr size_t kMaxConfigFileBytes = size_t{16} << 20;

/// Reads `path` (.json → JSON, anything else TOML) and applies it over `cfg`.
Result<void, std::vector<UserError>> load_config_file(const std::string& path, Config& cfg);

/// The format a file name selects (§4.1): ".json" → json, anything else → toml.
Format format_for_path(std::string_view path) noexcept;

}  // namespace moat::config
