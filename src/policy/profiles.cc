#include "policy/profiles.h"

#include "base/strings.h"

namespace moat::policy {

std::string ProfileSet::to_string() const {
  if (none) return "none";
  if (all) return "all";
  std::string s;
  auto add = [&](bool on, std::string_view n) {
    if (on) s.append(s.empty() ? "" : ",").append(n);
  };
  add(public_, "public");
  add(private_, "private");
  add(host, "host");
  return s;
}

Result<ProfileSet, ProfileError> parse_profiles(std::span<const std::string_view> items) {
  ProfileSet p;
  std::string first_other;  // first of public/private/host seen, for the combination error
  std::string exclusive;    // "none" or "all" when seen
  for (std::string_view item : items) {
    while (true) {
      const size_t comma = std::min(item.find(','), item.size());
      std::string name(item.substr(0, comma));
      for (auto& c : name)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      if (name.empty()) return unexpected(ProfileError{"empty profile name", ""});
      if (name == "public") p.public_ = true;
      else if (name == "private") p.private_ = true;
      else if (name == "host") p.host = true;
      else if (name == "none") p.none = true;
      else if (name == "all") p.all = true;
      else {
        std::string_view best;
        size_t best_d = 3;
        for (std::string_view c : {"public", "private", "host", "none", "all"})
          if (size_t d = edit_distance(name, c); d < best_d) best_d = d, best = c;
        return unexpected(ProfileError{"unknown profile " + quote_value(item.substr(0, comma)),
                                       best.empty() ? "" : "did you mean \"" + std::string(best) + "\"?"});
      }
      if (name == "none" || name == "all") {
        if (!exclusive.empty() && exclusive != name)
          return unexpected(ProfileError{quote_value(name) + " cannot be combined with " + quote_value(exclusive), ""});
        exclusive = name;
      } else if (first_other.empty()) {
        first_other = name;
      }
      if (!exclusive.empty() && !first_other.empty())
        return unexpected(ProfileError{quote_value(exclusive) + " cannot be combined with " + quote_value(first_other), ""});
      if (comma == item.size()) break;
      item = item.substr(comma + 1);
    }
  }
  return p;
}

std::vector<Rule> expand_profiles(const ProfileSet& p) {
  std::vector<Rule> out;
  if (p.none || p.all || p.empty()) return out;
  auto add = [&](std::string_view text) {
    // The profile strings are constants of this file; a parse failure is a programming error.
    auto r = parse_rules(text, Origin::profile);
    if (r) out.push_back(std::move(r->front()));
  };
  add("allow@dns");
  if (p.public_) add("allow@public");
  if (p.private_) add("allow@private");
  if (p.host) add("allow@host");
  return out;
}

Policy resolve_policy(const PolicyInputs& in) {
  Policy pol;
  pol.sni_requires_pin = in.sni_requires_pin;
  const bool egress_given = in.cli_default_egress || in.config_default_egress;
  if (in.cli_profiles) pol.profiles = *in.cli_profiles;
  else if (in.config_profiles) pol.profiles = *in.config_profiles;
  else if (!egress_given) pol.profiles.public_ = true;

  Action prof_egress = Action::deny, prof_ingress = Action::allow;
  if (pol.profiles.none) prof_egress = prof_ingress = Action::deny;
  if (pol.profiles.all) prof_egress = prof_ingress = Action::allow;
  pol.default_egress = in.cli_default_egress.value_or(in.config_default_egress.value_or(prof_egress));
  pol.default_ingress = in.cli_default_ingress.value_or(in.config_default_ingress.value_or(prof_ingress));

  for (const auto* list : {&in.block, &in.cli, &in.config}) pol.rules.insert(pol.rules.end(), list->begin(), list->end());
  auto prof = expand_profiles(pol.profiles);
  pol.rules.insert(pol.rules.end(), prof.begin(), prof.end());
  return pol;
}

}  // namespace moat::policy
