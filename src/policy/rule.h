#pragma once
// Policy rules (SPEC R-POL-1, R-POL-2) and the rule-string parser (R-POL-3, R-POL-15, §5.2).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/result.h"
#include "policy/groups.h"
#include "base/strings.h"

namespace moat::policy {

enum class Action : uint8_t { allow, deny };
/// Which traffic a rule applies to; `any` means both directions.
enum class Direction : uint8_t { egress, ingress, any };
/// Transport protocol of a query. ICMP is per family (a rule's `icmp` sets both bits).
enum class Proto : uint8_t { tcp, udp, icmpv4, icmpv6 };
/// Where a rule came from (R-POL-6), shown by explain and audit.
enum class Origin : uint8_t { block, cli, config, profile, floor, default_ };

std::string_view action_name(Action a) noexcept;
std::string_view direction_name(Direction d) noexcept;
std::string_view proto_name(Proto p) noexcept;
std::string_view origin_name(Origin o) noexcept;

/// A subset of {tcp, udp, icmpv4, icmpv6}; empty means any protocol.
struct ProtoSet {
  uint8_t bits = 0;

  static constexpr uint8_t bit(Proto p) noexcept { return uint8_t(1u << unsigned(p)); }
  [[nodiscard]] constexpr bool empty() const noexcept { return bits == 0; }
  [[nodiscard]] constexpr bool has(Proto p) const noexcept { return (bits & bit(p)) != 0; }
  constexpr void add(Proto p) noexcept { bits = uint8_t(bits | bit(p)); }
  [[nodiscard]] constexpr bool accepts(Proto p) const noexcept { return empty() || has(p); }
  [[nodiscard]] constexpr bool has_icmp() const noexcept { return has(Proto::icmpv4) || has(Proto::icmpv6); }
  /// True when every protocol this set accepts is accepted by `outer`.
  [[nodiscard]] constexpr bool within(ProtoSet outer) const noexcept {
    return outer.empty() || (!empty() && (bits & ~outer.bits) == 0);
  }
  friend constexpr bool operator==(ProtoSet, ProtoSet) = default;
};

/// Inclusive port range within 1..65535.
struct PortRange {
  uint16_t lo = 1;
  uint16_t hi = 65535;
  [[nodiscard]] constexpr bool contains(uint16_t p) const noexcept { return lo <= p && p <= hi; }
  friend constexpr bool operator==(PortRange, PortRange) = default;
};

/// An address prefix. Host bits are always clear (the parser rejects them). A v4-mapped
/// prefix of length >= 96 is stored as IPv4 (R-POL-4 normalisation).
struct Cidr {
  IpAddr net;
  int prefix = 0;
  /// R-POL-4 containment of a query address: `a` is normalised first, and a NAT64 address
  /// matches when either it or its embedded IPv4 address is inside.
  [[nodiscard]] bool contains(const IpAddr& a) const noexcept;
  /// True when every address of `inner` is inside this prefix (same family only).
  [[nodiscard]] bool covers(const Cidr& inner) const noexcept;
  [[nodiscard]] std::string to_string() const;  ///< "10.0.0.0/8", "1.2.3.4", "2001:db8::/32"
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

struct Target {
  enum class Kind : uint8_t { any, cidr, domain, suffix, group };
  Kind kind = Kind::any;
  Cidr cidr{};           ///< kind == cidr
  std::string name;      ///< kind == domain or suffix: lowercase, no trailing dot
  Group group = Group::none;  ///< kind == group
  [[nodiscard]] bool is_name() const noexcept { return kind == Kind::domain || kind == Kind::suffix; }
  /// m(n) of R-POL-7 for name targets: equal to the domain, or the suffix aligned on labels.
  /// Case-insensitive; one trailing dot on `n` is ignored. False for non-name targets.
  [[nodiscard]] bool matches_name(std::string_view n) const noexcept;
};

struct Rule {
  Action action = Action::deny;
  Direction dir = Direction::egress;
  Target target;
  ProtoSet protos;              ///< empty = any
  std::vector<PortRange> ports;  ///< empty = any
  std::string label;            ///< free text from the table form; not part of `text`
  std::string text;             ///< normalised rule string; parse_rules(text) gives this rule back
  Origin origin = Origin::cli;
  bool dns_macro = false;       ///< written as the `dns` macro (target host, port 53)
};

/// A parse error inside one rule of a comma-separated value. `column` is 1-based within
/// `rule_text` (the rule with surrounding whitespace trimmed).
struct RuleError {
  size_t rule_index_in_value = 0;  ///< 0-based position of the rule within the value
  size_t column = 1;
  std::string what;
  std::string hint;  ///< may be empty; already phrased ("write \"...\"", "did you mean ...?")
  std::string rule_text;
};

/// Parses a `--rule` / `policy.rules` value (R-POL-15): rules separated by commas, each
/// normalised and given `origin`. Stops at the first error.
Result<std::vector<Rule>, RuleError> parse_rules(std::string_view value, Origin origin);

/// A failure in rules text: the 1-based line, the column in that line where the failing
/// rule's text starts plus the error's column, and the rule's number counting every rule
/// of the text before it (1-based).
struct RulesTextError {
  size_t line = 1;
  size_t column = 1;
  size_t rule_number = 1;
  RuleError error;
};

/// Rules text, as a `--rules-file` holds it and MOAT_FMT_RULES / policy.set pass it: one
/// parse_rules() value per line, `#` to the end of a line is a comment, blank lines are
/// skipped. Parsing goes on after a bad line until `max_errors` errors are collected.
Result<std::vector<Rule>, std::vector<RulesTextError>> parse_rules_text(std::string_view text, Origin origin,
                                                                         size_t max_errors);

/// How a RuleError is placed after `where`: the CLI form quotes the rule and its column
/// (`--rule #2 "TEXT" col 12`), the config form uses the caller's FILE:LINE:COL: KEY.PATH.
enum class ErrorStyle : uint8_t { cli, config };
/// One §5.2 line, without a trailing newline:
/// `moat: error: <where> "TEXT" col C: what; hint` (cli) or `moat: error: <where>: what; hint`.
std::string format_rule_error(std::string_view where, const RuleError& e, ErrorStyle style = ErrorStyle::cli);

/// R-POL-3 name validation and normalisation (lowercase, one trailing dot removed). On
/// failure `column` is the 1-based offset of the problem in `name`.
struct NameError {
  size_t column = 1;
  std::string what;
  std::string hint;
};
Result<std::string, NameError> normalize_name(std::string_view name);

using moat::edit_distance;  // base/strings.h

/// The normalised rule string for `r` (what parse_rules stores in `text`).
std::string rule_to_string(const Rule& r);

}  // namespace moat::policy
