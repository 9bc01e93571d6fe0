#pragma once
// Profiles (SPEC R-POL-5), rule order and default resolution (R-POL-6).
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "policy/rule.h"

namespace moat::policy {

/// A set of profiles. `none` and `all` are exclusive (parse_profiles enforces it).
struct ProfileSet {
  bool public_ = false;
  bool private_ = false;
  bool host = false;
  bool none = false;
  bool all = false;
  /// True for the empty set (only explicit rules apply); `none` is not empty.
  [[nodiscard]] bool empty() const noexcept { return !public_ && !private_ && !host && !none && !all; }
  [[nodiscard]] std::string to_string() const;  ///< "public,private" / "none" / "" (canonical order)
  friend bool operator==(const ProfileSet&, const ProfileSet&) = default;
};

/// A profile error; callers print `moat: error: --profile: what[; hint]` (§5.2).
struct ProfileError {
  std::string what;
  std::string hint;
};

/// Parses profile names (each item may itself be a comma-separated list, as `--profile`
/// is). Case-insensitive; duplicates and order do not matter.
Result<ProfileSet, ProfileError> parse_profiles(std::span<const std::string_view> items);

/// R-POL-5 expansion: `allow@dns`, then allow rules for public, private, host in that order
/// (each with Origin::profile). `none`, `all` and the empty set expand to no rules.
std::vector<Rule> expand_profiles(const ProfileSet& p);

/// A resolved tenant policy (R-POL-1).
struct Policy {
  Action default_egress = Action::deny;
  Action default_ingress = Action::allow;
  std::vector<Rule> rules;           ///< evaluation order (R-POL-6)
  bool sni_requires_pin = true;      ///< policy.sni_requires_pin (R-POL-7)
  ProfileSet profiles;               ///< the profile set in force, for lint and `policy check`
};

/// Everything that feeds a tenant policy, before precedence is applied.
struct PolicyInputs {
  std::vector<Rule> block;   ///< compiled block-list denies (R-DNS-7)
  std::vector<Rule> cli;     ///< --rule values, argv order
  std::vector<Rule> config;  ///< policy.rules, file order
  std::optional<ProfileSet> cli_profiles, config_profiles;
  std::optional<Action> cli_default_egress, cli_default_ingress;
  std::optional<Action> config_default_egress, config_default_ingress;
  bool sni_requires_pin = true;
};

/// R-POL-5/6: picks the profile set (CLI, then config, then `[public]` unless a default
/// egress action was given, in which case it is empty), concatenates block, cli, config and
/// profile rules, and resolves each default by CLI flag, then config, then profile.
/// Defaults by profile: non-empty set → egress deny / ingress allow; `none` → deny / deny;
/// `all` → allow / allow; empty set → ingress allow (egress is always given explicitly then).
Policy resolve_policy(const PolicyInputs& in);

}  // namespace moat::policy
