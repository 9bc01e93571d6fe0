#pragma once
// A small, strict command-line parser: `--opt value`, `--opt=value`, short aliases, repeatable
// flags, and §5.2 messages (`moat: error: --publsh: unknown option; did you mean --publish?`).
// Every error is collected (up to 20) before anything happens.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/settings.h"
#include "base/strings.h"

namespace moat::cli {

struct Flag {
  std::string name;        ///< "--mtu"
  std::string short_name;  ///< "-v" or empty
  std::string value_name;  ///< "N"; empty = a switch without a value
  std::string help;
  /// Applies the value (empty for switches); returns an error naming the flag on bad input.
  std::function<std::optional<config::UserError>(std::string_view value)> apply;
  std::string group;  ///< --help section; empty = "Options"
};

struct ParseResult {
  std::vector<config::UserError> errors;
  std::vector<std::string> positional;  ///< everything after `--` or the first non-option
  bool help = false;
};

/// Parses args. When `stop_at_positional`, the first non-option argument and everything after it
/// is positional (the CMD of `moat run`); otherwise a positional argument is an error.
ParseResult parse_flags(const std::vector<Flag>& flags, const std::vector<std::string>& args,
                        bool stop_at_positional);

/// The values given to flag `name` (or its short alias) in `args`, read the way
/// parse_flags() reads them but without applying anything. Lets one flag take effect before
/// all others wherever it stands on the line (`--config`, R-CLI-1).
std::vector<std::string> prescan_flag(const std::vector<Flag>& flags, const std::vector<std::string>& args,
                                      std::string_view name, bool stop_at_positional);

/// One flag for every setting of the schema (config/settings.h) that has a flag name and
/// that `want` accepts (all when empty), applying into `cfg` through the same functions as
/// the config key; errors name the flag (`--mtu: 100 is out of range; expected ...`).
/// Each flag keeps its own FlagState across its occurrences on the line.
std::vector<Flag> setting_flags(config::Config& cfg, const std::function<bool(const config::Setting&)>& want = {});

/// `flag: what; hint` for a schema Problem (its own `where` when it has one).
config::UserError flag_error(std::string_view flag, config::Problem p);

/// Prints `Usage:` plus one line per flag, under a heading per group (in order of first
/// appearance).
std::string format_help(std::string_view usage, const std::vector<Flag>& flags);

/// One subcommand's --help as data (its usage line and flags), for the man page and the
/// shell completions (docgen.h): while a HelpCapture is installed, format_help() records
/// into it and returns "" instead of formatting.
struct HelpCapture {
  std::vector<std::pair<std::string, std::vector<Flag>>> pages;  ///< usage, flags
};
/// Installs `c` (null: format_help formats again). Not thread-safe; the CLI is one thread.
void set_help_capture(HelpCapture* c);

using moat::edit_distance;  // base/strings.h

}  // namespace moat::cli
