#include "cli/flags.h"

#include <gtest/gtest.h>

namespace moat::cli {
namespace {

struct Fixture {
  std::string ifname;
  bool flag = false;
  std::vector<Flag> flags{
      {"--ifname", "", "NAME", "interface", [this](std::string_view v) -> std::optional<config::UserError> {
         if (v.empty()) return config::UserError{"--ifname", "empty", ""};
         ifname = v;
         return std::nullopt;
       }},
      {"--no-ipv6", "", "", "switch", [this](std::string_view) -> std::optional<config::UserError> {
         flag = true;
         return std::nullopt;
       }},
      {"--publish", "-p", "SPEC", "publish", [](std::string_view) -> std::optional<config::UserError> {
         return std::nullopt;
       }},
  };
};

TEST(Flags, ValueFormsSwitchesAndPositional) {
  Fixture f;
  auto r = parse_flags(f.flags, {"--ifname=tap0", "--no-ipv6", "-p", "80:80", "ping", "-c", "1"}, true);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(f.ifname, "tap0");
  EXPECT_TRUE(f.flag);
  EXPECT_EQ(r.positional, (std::vector<std::string>{"ping", "-c", "1"}));
}

TEST(Flags, DoubleDashEndsOptions) {
  Fixture f;
  auto r = parse_flags(f.flags, {"--ifname", "x", "--", "--ifname", "y"}, true);
  EXPECT_EQ(f.ifname, "x");
  EXPECT_EQ(r.positional, (std::vector<std::string>{"--ifname", "y"}));
}

TEST(Flags, UnknownWithSuggestionMissingValueAndSwitchWithValue) {
  Fixture f;
  auto r = parse_flags(f.flags, {"--publsh", "1", "--no-ipv6=1", "--zzzzzzzz", "--ifname"}, false);
  ASSERT_EQ(r.errors.size(), 5u);
  EXPECT_EQ(r.errors[0].format(), "moat: error: --publsh: unknown option; did you mean --publish?");
  EXPECT_EQ(r.errors[1].format(), "moat: error: \"1\": unexpected argument");
  EXPECT_EQ(r.errors[2].format(), "moat: error: --no-ipv6: takes no value");
  EXPECT_EQ(r.errors[3].format(), "moat: error: --zzzzzzzz: unknown option");
  EXPECT_EQ(r.errors[4].format(), "moat: error: --ifname: missing value; expected --ifname NAME");
}

TEST(Flags, ApplyErrorsAreCollected) {
  Fixture f;
  auto r = parse_flags(f.flags, {"--ifname="}, false);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].format(), "moat: error: --ifname: empty");
}

TEST(Flags, PrescanFindsValuesWithoutApplyingAnything) {
  Fixture f;
  // A flag's value that looks like the flag is a value, not a second occurrence.
  std::vector<std::string> args{"--ifname", "-p", "--publish=1:1", "-p", "2:2", "cmd", "-p", "3:3"};
  EXPECT_EQ(prescan_flag(f.flags, args, "--publish", true), (std::vector<std::string>{"1:1", "2:2"}));
  EXPECT_EQ(prescan_flag(f.flags, args, "--publish", false), (std::vector<std::string>{"1:1", "2:2", "3:3"}));
  EXPECT_EQ(prescan_flag(f.flags, {"--", "-p", "9:9"}, "--publish", false), std::vector<std::string>{});
  EXPECT_EQ(prescan_flag(f.flags, {"--no-ipv6", "-p"}, "--publish", false), std::vector<std::string>{});
  EXPECT_EQ(f.ifname, "");
}

TEST(SettingFlags, ErrorsNameTheFlagAndMatchTheKey) {
  config::Config c;
  auto flags = setting_flags(c);
  auto r = parse_flags(flags, {"--mtu", "100", "--dns-timeout=31s", "-r", "allow@dns,allow@nope:tcp", "--max-flows", "9"},
                       false);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].format(), "moat: error: --mtu: 100 is out of range; expected 576-65520");
  EXPECT_EQ(r.errors[1].format(), "moat: error: --dns-timeout: \"31s\" is out of range; expected 100ms-30s");
  EXPECT_EQ(r.errors[2].where, "--rule #2 \"allow@nope:tcp\" col 7");  // the short form names the rule too
  EXPECT_EQ(c.flows.max_flows, 9u);
  // Each flag keeps its own count: the next --rule value's rules are numbered on.
  config::Config c2;
  auto f2 = setting_flags(c2);
  auto r2 = parse_flags(f2, {"--rule", "allow@dns", "--rule", "bogus"}, false);
  ASSERT_EQ(r2.errors.size(), 1u);
  EXPECT_EQ(r2.errors[0].where.rfind("--rule #2 ", 0), 0u) << r2.errors[0].where;
}

TEST(SettingFlags, HelpIsGroupedAndCarriesRanges) {
  config::Config c;
  std::string h = format_help("moat run", setting_flags(c));
  EXPECT_NE(h.find("\nAddressing:\n"), std::string::npos);
  EXPECT_NE(h.find("\nDNS:\n"), std::string::npos);
  EXPECT_NE(h.find("--max-flows N"), std::string::npos);
  EXPECT_NE(h.find("(default 4096; 1-65536)"), std::string::npos);
  EXPECT_LT(h.find("Addressing:"), h.find("--mtu N"));
}

TEST(Flags, EditDistance) {
  EXPECT_EQ(edit_distance("--publsh", "--publish"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

// --- bad input (issue 14) ------------------------------------------------------------

std::vector<std::string> flag_errors(std::vector<std::string> args, config::Config* out = nullptr) {
  config::Config c;
  auto flags = setting_flags(out != nullptr ? *out : c);
  auto r = parse_flags(flags, args, false);
  std::vector<std::string> v;
  for (const auto& e : r.errors) v.push_back(e.format());
  return v;
}

TEST(SettingFlags, MtuZeroIsRefused) {
  EXPECT_EQ(flag_errors({"--mtu", "0"}), std::vector<std::string>{"moat: error: --mtu: 0 is out of range; expected 576-65520"});
  EXPECT_EQ(flag_errors({"--mtu=-1"}), std::vector<std::string>{"moat: error: --mtu: -1 is out of range; expected 576-65520"});
  auto huge = flag_errors({"--mtu", std::string(5000, '9')});
  ASSERT_EQ(huge.size(), 1u);
  EXPECT_LT(huge[0].size(), 200u) << huge[0].size();
}

TEST(SettingFlags, EmptyAndInvalidNames) {
  EXPECT_EQ(flag_errors({"--ifname", ""}), std::vector<std::string>{"moat: error: --ifname: \"\" must be 1-15 bytes"});
  auto h = flag_errors({"--hostname", ""});
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].rfind("moat: error: --hostname: empty hostname", 0), 0u) << h[0];
  auto nl = flag_errors({"--hostname", "good\nbad"});
  ASSERT_EQ(nl.size(), 1u);
  EXPECT_EQ(nl[0].rfind("moat: error: --hostname: \"good\\nbad\" is not a valid hostname", 0), 0u) << nl[0];
  auto big = flag_errors({"--hostname", std::string(300, 'a')});
  ASSERT_EQ(big.size(), 1u);
  EXPECT_NE(big[0].find("(300 bytes) is longer than 253 bytes"), std::string::npos) << big[0];
  config::Config c;
  EXPECT_TRUE(flag_errors({"--hostname", "Sandbox-7.internal"}, &c).empty());
  EXPECT_EQ(c.net.hostname, "Sandbox-7.internal");
}

TEST(SettingFlags, EmptyPathsAreRefused) {
  for (const char* f : {"--pid-file", "--ready-file", "--pcap", "--audit", "--dns-block-file"}) {
    auto e = flag_errors({f, ""});
    ASSERT_EQ(e.size(), 1u) << f;
    EXPECT_EQ(e[0], std::string("moat: error: ") + f + ": empty path");
  }
}

TEST(SettingFlags, HugeValuesAreQuotedBounded) {
  const std::string big(100000, 'x');
  for (const char* f : {"--name", "--ipv4", "--gateway4", "--dhcpv6", "--offloads", "--publish", "--rule", "--dns-block",
                        "--log-level", "--connect-timeout", "--guest-mac"}) {
    auto e = flag_errors({f, big});
    ASSERT_FALSE(e.empty()) << f;
    EXPECT_LT(e[0].size(), 400u) << f << ": " << e[0].substr(0, 200);
    EXPECT_EQ(e[0].find('\n'), std::string::npos) << f;
  }
  auto unknown = flag_errors({"--" + big});
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_LT(unknown[0].size(), 200u);
  auto stray = flag_errors({big});
  ASSERT_EQ(stray.size(), 1u);
  EXPECT_LT(stray[0].size(), 200u);
}

}  // namespace
}  // namespace moat::cli
