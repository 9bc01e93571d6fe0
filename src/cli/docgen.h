#pragma once
// The manual pages, generated from the same data as --help (issue 13: "man pages generated
// from the same settings schema as --help"): moat(1) from each subcommand's usage line and
// flags (captured through HelpCapture, so a new setting row or flag shows up by itself), and
// moat.toml(5) from every row of config/settings.h that has a config key. `moat __man 1|5`
// prints them; the build writes them next to the binary and `cmake --install` installs them.
#include <string>
#include <utility>
#include <vector>

#include "cli/flags.h"

namespace moat::cli {

/// moat(1): NAME, SYNOPSIS, DESCRIPTION, one subsection per captured subcommand with its
/// options by --help group, EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO.
std::string man_moat(const HelpCapture& subcommands, const std::string& version);

/// moat.toml(5): the file format, then every config key of the schema by table, with its
/// type, default, range and flag.
std::string man_moat_toml(const std::string& version);

/// Escapes text for a troff line (backslashes, a leading '.' or '\'', hyphens in options).
std::string troff_escape(std::string_view text);

}  // namespace moat::cli
