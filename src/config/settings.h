#pragma once
// Every setting described once (SPEC §4.2): config key, flag name, value type, range, unit,
// default, one-line help and the Config field it sets. The TOML/JSON loader (loader.cc), the
// command-line flags and `--help` (cli/) are all driven by this table, and the two sources
// reach a value through the same functions here, so a range, a default shown in --help or
// the text of an error cannot differ between `--mtu` and `net.mtu`.
//
// What stays source-specific is only the syntax around a value: a file value has a type
// (an integer, a string, an array: "expected an integer, got a string" is the loader's) and
// a position (`FILE:LINE:COL: key.path: `); a flag value is text and its error is prefixed
// with the flag's name (`--mtu: `). Everything after that prefix is a `Problem` made here.
//
// Settings with their own grammar (rules, publish specs, DNS upstreams, impairment,
// addresses, DHCPv6 modes, offloads) keep their parsers (policy/, net_specs.h, app/); the
// table refers to them through `set_text`, so the flag and the key call the same parser.
// A few keys whose file form is structured (policy.rules and publish tables, dns.hosts, the
// schema version) are `custom`: the loader walks their structure and then calls the same
// parsers as the flag.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/time.h"
#include "config/config.h"

namespace moat::config {

/// How a value is written (SPEC §4.1).
enum class ValueType : uint8_t {
  boolean,      ///< file: true/false; flag: a switch that stands for `flag_value`
  integer,      ///< [lo, hi] (0 also allowed when `zero_ok`)
  duration,     ///< a string with a unit; [lo, hi] in milliseconds
  size,         ///< a byte count or a string with a B/KB/KiB/MB/MiB/GB/GiB suffix; [lo, hi] in bytes;
                ///< set_int receives the bytes
  enumeration,  ///< one of `choices`; set_int receives the index
  text,         ///< a string handed to set_text (addresses and small grammars included)
  path,         ///< text; in a file `~` is $HOME and relative paths are the file's directory
  list,         ///< file: an array of strings, replacing the list; flag: repeatable, appending
  path_list,    ///< list of paths
  custom,       ///< a structured file form walked by the loader (see above)
  unsupported,  ///< a §4.2 key or table this build refuses by name; `help` is the reason
};

/// The body of an error, shared by the flag and the key; the caller prefixes `--flag` or
/// `FILE:LINE:COL: key.path`.
struct Problem {
  std::string what;
  std::string hint;
  std::string where;  ///< replaces the flag name when set (a --rule error names the rule)
  friend bool operator==(const Problem&, const Problem&) = default;
};

/// Where a value came from. Most settings ignore it; R-CLI-1 has some flags fill other fields
/// than their key (--rule → PolicyInputs::cli, before the file's rules).
enum class Source : uint8_t { flag, file };

/// State one flag keeps across its occurrences on a command line (--rule numbers rules over
/// every value; --profile and --dns-upstream need to know whether they were seen).
struct FlagState {
  size_t count = 0;                 ///< values applied so far
  std::vector<std::string> values;  ///< every value given, in order
};

/// The --help section a flag is listed under.
enum class Group : uint8_t { addressing, flows, dns, policy, tls, output };

using Opt = std::optional<Problem>;
using SetBool = Opt (*)(Config&, Source, bool);
using SetInt = Opt (*)(Config&, Source, int64_t);
using SetDuration = Opt (*)(Config&, Source, Duration);
using SetText = Opt (*)(Config&, Source, std::string_view, FlagState&);
using ClearList = void (*)(Config&);

/// One setting. Either `key` or `flag` may be empty (file-only, command-line-only).
struct Setting {
  std::string_view key;         ///< "net.mtu"
  std::string_view flag;        ///< "--mtu"
  std::string_view short_flag;  ///< "-p"
  std::string_view value_name;  ///< "N"; empty = a switch
  ValueType type = ValueType::text;
  int64_t lo = 0, hi = 0;       ///< integer range; duration range in ms
  bool zero_ok = false;         ///< integer: 0 (= "the default") is also accepted
  std::string_view unit;        ///< shown after the range in --help ("bytes")
  std::string_view choices;     ///< enumeration: "auto,on,off"
  std::string_view flag_value;  ///< switch: the value the flag stands for ("false", "off")
  std::string_view def;         ///< the default as --help shows it; empty = none shown
  std::string_view help;        ///< one line; for `unsupported`, the reason
  std::string_view flag_help;   ///< a switch's own line when it says the opposite of `help`
  Group group = Group::output;
  bool flag_replaces = false;   ///< list: the first flag occurrence replaces the file's list
  bool dash_ok = false;         ///< path: "-" (stderr) is kept, not taken as a relative path
  SetBool set_bool = nullptr;
  SetInt set_int = nullptr;
  SetDuration set_duration = nullptr;
  SetText set_text = nullptr;
  ClearList clear = nullptr;
};

/// The table, in --help order.
std::span<const Setting> settings();

/// The setting with config key `key`, or null.
const Setting* setting_by_key(std::string_view key);
/// The setting with flag (or short flag) `flag`, or null.
const Setting* setting_by_flag(std::string_view flag);

/// Applies a flag's value (ignored for switches, which stand for `flag_value`).
Opt apply_flag(const Setting& s, Config& c, std::string_view value, FlagState& st);

/// The shared steps behind both sources.
Opt apply_bool(const Setting& s, Config& c, Source src, bool v);
Opt apply_int(const Setting& s, Config& c, Source src, int64_t v);
/// `text` as written (a file's string, a flag's value): unit required, then the range.
Opt apply_duration(const Setting& s, Config& c, Source src, std::string_view text);
/// `text` as written (a flag's value, a file's string or its integer as digits): a byte
/// count or a number with a unit (SPEC §4.1), then the range.
Opt apply_size(const Setting& s, Config& c, Source src, std::string_view text);
Opt apply_choice(const Setting& s, Config& c, Source src, std::string_view text);
Opt apply_text(const Setting& s, Config& c, Source src, std::string_view text, FlagState& st);

/// "expected 1-65536", "expected 0 or 576-65520", "expected 100ms-30s".
std::string range_text(const Setting& s);
/// "30s", "500ms", "10m", "2h": the largest unit that divides exactly.
std::string format_duration(Duration d);
/// "256MiB", "64KiB", "1000B": the largest binary unit that divides exactly.
std::string format_size(uint64_t bytes);
/// SPEC §4.1 size: "4096", "4096B", "64KiB", "1MB" (KB/MB/GB powers of 1000); nullopt if not one
/// or beyond 2^62 bytes.
std::optional<uint64_t> parse_size(std::string_view text);
/// "auto, on, off" for messages.
std::string choices_text(const Setting& s);

/// A flag's --help text: help, then "(default D; RANGE UNIT)"; a switch's is `flag_help`
/// (or `help`) alone, since it takes no value.
std::string help_text(const Setting& s);
/// "Addressing", "Flows", ...
std::string_view group_name(Group g) noexcept;

/// dns.hosts / --dns-host: adds IP to NAME's answers (several per name allowed).
Opt add_dns_host(Config& c, std::string_view name, std::string_view ip);
/// Appends a TLS host pattern (tls.bypass, tls.no_verify, tls.host_ca hosts) to `out`:
/// "*", "*.suffix" (the suffix and every name under it) or an exact name; normalised
/// (lowercase, no trailing dot).
Opt add_host_pattern(std::string_view v, std::vector<std::string>* out);

}  // namespace moat::config
