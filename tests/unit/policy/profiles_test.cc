#include "policy/profiles.h"

#include <gtest/gtest.h>

namespace moat::policy {
namespace {

Result<ProfileSet, ProfileError> parse(std::initializer_list<std::string_view> items) {
  return parse_profiles(std::span<const std::string_view>(items.begin(), items.size()));
}

std::vector<std::string> texts(const std::vector<Rule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(r.text);
  return out;
}

std::vector<Rule> rules(std::string_view v, Origin o) { return *parse_rules(v, o); }

TEST(Profiles, ParseAndExpandCanonicalOrder) {
  auto p = parse({"host,PUBLIC", "private", "public"});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->to_string(), "public,private,host");
  auto r = expand_profiles(*p);
  EXPECT_EQ(texts(r), (std::vector<std::string>{"allow@dns", "allow@public", "allow@private", "allow@host"}));
  for (const auto& x : r) EXPECT_EQ(x.origin, Origin::profile);
  EXPECT_EQ(texts(expand_profiles(*parse({"private"}))), (std::vector<std::string>{"allow@dns", "allow@private"}));
  EXPECT_TRUE(expand_profiles(*parse({"none"})).empty());
  EXPECT_TRUE(expand_profiles(*parse({"all"})).empty());
  EXPECT_TRUE(expand_profiles(ProfileSet{}).empty());
}

TEST(Profiles, Errors) {
  auto e = parse({"all,public"});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().what, "\"all\" cannot be combined with \"public\"");
  EXPECT_EQ(parse({"public", "none"}).error().what, "\"none\" cannot be combined with \"public\"");
  EXPECT_EQ(parse({"none", "all"}).error().what, "\"all\" cannot be combined with \"none\"");
  EXPECT_TRUE(parse({"none", "none"}));
  EXPECT_EQ(parse({"pubic"}).error().what, "unknown profile \"pubic\"");
  EXPECT_EQ(parse({"pubic"}).error().hint, "did you mean \"public\"?");
  EXPECT_EQ(parse({"public,"}).error().what, "empty profile name");
}

TEST(Profiles, ResolveDefaultProfileAndOrder) {
  PolicyInputs in;
  in.block = rules("deny@ads.example", Origin::block);
  in.cli = rules("deny@evil.example,allow@10.0.0.0/8", Origin::cli);
  in.config = rules("allow@host:tcp:8080", Origin::config);
  Policy p = resolve_policy(in);
  EXPECT_EQ(texts(p.rules), (std::vector<std::string>{"deny@ads.example", "deny@evil.example", "allow@10.0.0.0/8",
                                                      "allow@host:tcp:8080", "allow@dns", "allow@public"}));
  EXPECT_EQ(p.default_egress, Action::deny);
  EXPECT_EQ(p.default_ingress, Action::allow);
  EXPECT_TRUE(p.profiles.public_);
}

TEST(Profiles, ResolveDefaults) {
  PolicyInputs in;
  in.config_default_egress = Action::allow;  // disables the default profile
  Policy p = resolve_policy(in);
  EXPECT_TRUE(p.profiles.empty());
  EXPECT_TRUE(p.rules.empty());
  EXPECT_EQ(p.default_egress, Action::allow);

  in.cli_default_egress = Action::deny;  // CLI beats config
  EXPECT_EQ(resolve_policy(in).default_egress, Action::deny);

  PolicyInputs n;
  n.config_profiles = *parse({"none"});
  p = resolve_policy(n);
  EXPECT_EQ(p.default_egress, Action::deny);
  EXPECT_EQ(p.default_ingress, Action::deny);
  EXPECT_TRUE(p.rules.empty());
  n.cli_profiles = *parse({"all"});  // CLI profiles beat config profiles
  p = resolve_policy(n);
  EXPECT_EQ(p.default_egress, Action::allow);
  EXPECT_EQ(p.default_ingress, Action::allow);
  n.config_default_ingress = Action::deny;
  EXPECT_EQ(resolve_policy(n).default_ingress, Action::deny);
  n.cli_default_ingress = Action::allow;
  EXPECT_EQ(resolve_policy(n).default_ingress, Action::allow);
}

}  // namespace
}  // namespace moat::policy
