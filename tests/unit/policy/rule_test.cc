#include "policy/rule.h"

#include <gtest/gtest.h>

namespace moat::policy {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

Rule one(std::string_view s) {
  auto r = parse_rules(s, Origin::cli);
  EXPECT_TRUE(r) << s << ": " << (r ? "" : r.error().what);
  if (!r) return {};
  EXPECT_EQ(r->size(), 1u);
  return r->front();
}

RuleError bad(std::string_view s) {
  auto r = parse_rules(s, Origin::cli);
  EXPECT_FALSE(r) << s;
  return r ? RuleError{} : r.error();
}

std::string msg(std::string_view s, std::string_view where = "--rule #1") {
  return format_rule_error(where, bad(s));
}

constexpr uint8_t kTcp = ProtoSet::bit(Proto::tcp), kUdp = ProtoSet::bit(Proto::udp),
                  kIcmp = ProtoSet::bit(Proto::icmpv4) | ProtoSet::bit(Proto::icmpv6);

TEST(RuleParse, SpecTable) {
  Rule r = one("allow@dns");
  EXPECT_EQ(r.action, Action::allow);
  EXPECT_TRUE(r.dns_macro);
  EXPECT_EQ(r.target.kind, Target::Kind::group);
  EXPECT_EQ(r.target.group, Group::host);
  EXPECT_EQ(r.protos.bits, kTcp | kUdp);
  EXPECT_EQ(r.ports, (std::vector<PortRange>{{53, 53}}));
  EXPECT_EQ(r.text, "allow@dns");

  r = one("deny@dns:udp");
  EXPECT_EQ(r.action, Action::deny);
  EXPECT_EQ(r.protos.bits, kUdp);
  EXPECT_EQ(r.text, "deny@dns:udp");

  r = one("allow@public:tcp:80+443");
  EXPECT_EQ(r.target.group, Group::public_);
  EXPECT_EQ(r.protos.bits, kTcp);
  EXPECT_EQ(r.ports, (std::vector<PortRange>{{80, 80}, {443, 443}}));
  EXPECT_EQ(r.text, "allow@public:tcp:80+443");

  r = one("allow@api.openai.com:tcp:443");
  EXPECT_EQ(r.target.kind, Target::Kind::domain);
  EXPECT_EQ(r.target.name, "api.openai.com");

  r = one("allow@*.github.com");
  EXPECT_EQ(r.target.kind, Target::Kind::suffix);
  EXPECT_EQ(r.target.name, "github.com");
  EXPECT_TRUE(r.protos.empty());
  EXPECT_TRUE(r.ports.empty());

  r = one("deny@metadata");
  EXPECT_EQ(r.target.group, Group::metadata);

  auto two = parse_rules("deny@*.ads.example,allow@public", Origin::config);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].text, "deny@*.ads.example");
  EXPECT_EQ((*two)[1].text, "allow@public");
  EXPECT_EQ((*two)[1].origin, Origin::config);

  r = one("allow@10.1.0.0/16:tcp:5432+6379");
  EXPECT_EQ(r.target.kind, Target::Kind::cidr);
  EXPECT_EQ(r.target.cidr.to_string(), "10.1.0.0/16");
  EXPECT_EQ(r.text, "allow@10.1.0.0/16:tcp:5432+6379");

  r = one("allow@[2001:db8:1::/48]:udp:5000-5100");
  EXPECT_EQ(r.target.cidr.prefix, 48);
  EXPECT_EQ(r.ports, (std::vector<PortRange>{{5000, 5100}}));
  EXPECT_EQ(r.text, "allow@[2001:db8:1::/48]:udp:5000-5100");

  EXPECT_EQ(one("allow@host:tcp:11434").text, "allow@host:tcp:11434");
  r = one("allow@8.8.8.8:udp:53");
  EXPECT_EQ(r.target.cidr.prefix, 32);
  EXPECT_EQ(r.text, "allow@8.8.8.8:udp:53");
  EXPECT_EQ(one("allow@public:icmp").protos.bits, kIcmp);

  r = one("allow:ingress@loopback:tcp:8080");
  EXPECT_EQ(r.dir, Direction::ingress);
  EXPECT_EQ(r.text, "allow:ingress@loopback:tcp:8080");
  r = one("deny:any@private");
  EXPECT_EQ(r.dir, Direction::any);
  r = one("allow@domain=intranet:tcp:80");
  EXPECT_EQ(r.target.kind, Target::Kind::domain);
  EXPECT_EQ(r.target.name, "intranet");
  EXPECT_EQ(r.text, "allow@domain=intranet:tcp:80");
  EXPECT_EQ(one("allow@group=private").text, "allow@private");
}

TEST(RuleParse, FormsAndNormalisation) {
  EXPECT_EQ(one("ALLOW:Egress@API.Example.COM.:TCP:443").text, "allow@api.example.com:tcp:443");
  auto two = parse_rules(" allow@any  ,\tdeny@host ", Origin::cli);
  ASSERT_TRUE(two);
  EXPECT_EQ((*two)[1].text, "deny@host");
}

TEST(RuleParse, MoreForms) {
  EXPECT_EQ(one("allow@any").target.kind, Target::Kind::any);
  EXPECT_EQ(one("allow@suffix=example.com").text, "allow@*.example.com");
  EXPECT_EQ(one("allow@suffix=*.example.com").text, "allow@*.example.com");
  EXPECT_EQ(one("allow@domain=example.com").text, "allow@example.com");
  EXPECT_EQ(one("allow@cidr=10.0.0.0/8").text, "allow@10.0.0.0/8");
  EXPECT_EQ(one("allow@cidr=[2001:db8::/32]").text, "allow@[2001:db8::/32]");
  EXPECT_EQ(one("allow@[2001:DB8::1]").text, "allow@[2001:db8::1]");
  EXPECT_EQ(one("allow@1.2.3.4/32").text, "allow@1.2.3.4");
  // A mapped prefix >= 96 becomes IPv4 at parse time.
  Rule r = one("deny@[::ffff:10.0.0.0/104]");
  EXPECT_FALSE(r.target.cidr.net.is_v6);
  EXPECT_EQ(r.text, "deny@10.0.0.0/8");
  EXPECT_EQ(one("allow@host:any:443").text, "allow@host:any:443");
  EXPECT_EQ(one("allow@host:tcp+any").text, "allow@host");
  EXPECT_EQ(one("allow@host:tcp:any").text, "allow@host:tcp");
  EXPECT_EQ(one("allow@host:icmpv4+udp").text, "allow@host:udp+icmpv4");
  EXPECT_EQ(one("allow@dns:tcp").text, "allow@dns:tcp");
  EXPECT_EQ(one("allow:egress@dns").text, "allow@dns");
  EXPECT_EQ(one("allow@domain=123.456").text, "allow@domain=123.456");
  EXPECT_EQ(one("allow@link-local:tcp:1-65535").text, "allow@link-local:tcp:1-65535");
  EXPECT_EQ(one("allow@under_score.example").target.name, "under_score.example");
  // domain=public is a name, public is the group.
  EXPECT_EQ(one("allow@domain=public").target.kind, Target::Kind::domain);
  EXPECT_EQ(one("allow@domain=public").text, "allow@domain=public");
}

TEST(RuleParse, ErrorsExact) {
  EXPECT_EQ(format_rule_error("--rule #2", bad("allow@host:443")),
            "moat: error: --rule #2 \"allow@host:443\" col 12: \"443\" is not a protocol; write \"allow@host:tcp:443\"");
  EXPECT_EQ(msg("allow:ingress@any:icmp"),
            "moat: error: --rule #1 \"allow:ingress@any:icmp\" col 7: ICMP rules must be egress");
  EXPECT_EQ(msg("allow:any@any:icmpv6"), "moat: error: --rule #1 \"allow:any@any:icmpv6\" col 7: ICMP rules must be egress");
  EXPECT_EQ(msg("allow@any:icmp:80"), "moat: error: --rule #1 \"allow@any:icmp:80\" col 16: ICMP rules take no ports");
  EXPECT_EQ(format_rule_error("a.toml:9:3: policy.rules[1]", bad("allow@10.1.2.0/8"), ErrorStyle::config),
            "moat: error: a.toml:9:3: policy.rules[1]: 10.1.2.0/8 has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(msg("allow@[2001:db8::1/32]"),
            "moat: error: --rule #1 \"allow@[2001:db8::1/32]\" col 8: 2001:db8::1/32 has host bits set; did you mean "
            "[2001:db8::/32]?");
  EXPECT_EQ(msg("allow@2001:db8::1"),
            "moat: error: --rule #1 \"allow@2001:db8::1\" col 7: IPv6 address \"2001:db8::1\" needs brackets; write "
            "\"[2001:db8::1]\"");
  EXPECT_EQ(msg("allow@2001:db8::/32:tcp:443"),
            "moat: error: --rule #1 \"allow@2001:db8::/32:tcp:443\" col 7: IPv6 address \"2001:db8::/32\" needs "
            "brackets; write \"[2001:db8::/32]\"");
  EXPECT_EQ(msg("allow@::1"), "moat: error: --rule #1 \"allow@::1\" col 7: IPv6 address \"::1\" needs brackets; write \"[::1]\"");
  EXPECT_EQ(msg("allow@host:tcp+"), "moat: error: --rule #1 \"allow@host:tcp+\" col 16: empty protocol item");
  EXPECT_EQ(msg("allow@host::443"), "moat: error: --rule #1 \"allow@host::443\" col 12: empty protocol item");
  EXPECT_EQ(msg("allow@host:tcp:80+"), "moat: error: --rule #1 \"allow@host:tcp:80+\" col 19: empty port item");
  EXPECT_EQ(msg("allow@host:tcp:"), "moat: error: --rule #1 \"allow@host:tcp:\" col 16: empty port item");
  EXPECT_EQ(msg("allow@host:tcp:6000-5000"),
            "moat: error: --rule #1 \"allow@host:tcp:6000-5000\" col 16: port range \"6000-5000\" has low > high; write "
            "\"5000-6000\"");
  EXPECT_EQ(msg("allow@host:tcp:0"), "moat: error: --rule #1 \"allow@host:tcp:0\" col 16: port 0 is out of range (1-65535)");
  EXPECT_EQ(msg("allow@host:tcp:65536"),
            "moat: error: --rule #1 \"allow@host:tcp:65536\" col 16: port 65536 is out of range (1-65535)");
  EXPECT_EQ(msg("allow@host:tcp:1-0"), "moat: error: --rule #1 \"allow@host:tcp:1-0\" col 18: port 0 is out of range (1-65535)");
  EXPECT_EQ(msg("allow@host:tcp:http"), "moat: error: --rule #1 \"allow@host:tcp:http\" col 16: \"http\" is not a port");
  EXPECT_EQ(msg("allow@*.com"), "moat: error: --rule #1 \"allow@*.com\" col 9: suffix \"com\" needs at least 2 labels");
  EXPECT_EQ(msg("allow@suffix=com"), "moat: error: --rule #1 \"allow@suffix=com\" col 14: suffix \"com\" needs at least 2 labels");
  EXPECT_EQ(msg("allow@bücher.de"),
            "moat: error: --rule #1 \"allow@bücher.de\" col 8: \"bücher.de\" is not ASCII; use the A-label (xn--…) form");
  EXPECT_EQ(msg("alow@any"), "moat: error: --rule #1 \"alow@any\" col 1: unknown action \"alow\"; did you mean \"allow\"?");
  EXPECT_EQ(msg("permit@any"), "moat: error: --rule #1 \"permit@any\" col 1: unknown action \"permit\"");
  EXPECT_EQ(msg("allow:egres@any"),
            "moat: error: --rule #1 \"allow:egres@any\" col 7: unknown direction \"egres\"; did you mean \"egress\"?");
  EXPECT_EQ(msg("allow@publc"), "moat: error: --rule #1 \"allow@publc\" col 7: unknown target \"publc\"; did you mean \"public\"?");
  EXPECT_EQ(msg("allow@group=metdata"),
            "moat: error: --rule #1 \"allow@group=metdata\" col 13: unknown group \"metdata\"; did you mean \"metadata\"?");
  EXPECT_EQ(msg("allow@domian=x.com"),
            "moat: error: --rule #1 \"allow@domian=x.com\" col 7: unknown target kind \"domian=\"; did you mean \"domain=\"?");
  EXPECT_EQ(msg("allow@host:tpc"), "moat: error: --rule #1 \"allow@host:tpc\" col 12: unknown protocol \"tpc\"; did you mean \"tcp\"?");
  EXPECT_EQ(msg("allow@intranet"),
            "moat: error: --rule #1 \"allow@intranet\" col 7: \"intranet\" is a single-label name; write \"domain=intranet\"");
  EXPECT_EQ(msg("allow@1.2.3"), "moat: error: --rule #1 \"allow@1.2.3\" col 7: \"1.2.3\" is not a valid IPv4 address");
  EXPECT_EQ(msg("allow@1.2.3.0/33"), "moat: error: --rule #1 \"allow@1.2.3.0/33\" col 15: prefix length 33 is out of range (0-32)");
  EXPECT_EQ(msg("allow@https://example.com"),
            "moat: error: --rule #1 \"allow@https://example.com\" col 7: a URL is not a target; write the host name only");
  EXPECT_EQ(msg("allow@example.com/path"),
            "moat: error: --rule #1 \"allow@example.com/path\" col 18: a path is not allowed in a name");
  EXPECT_EQ(msg("allow@user@example.com"),
            "moat: error: --rule #1 \"allow@user@example.com\" col 11: userinfo is not allowed in a name");
  EXPECT_EQ(msg("allow@a..com"), "moat: error: --rule #1 \"allow@a..com\" col 9: empty label in a name");
  EXPECT_EQ(msg("allow@a.*.com"), "moat: error: --rule #1 \"allow@a.*.com\" col 9: \"*\" is only allowed as a leading \"*.\"");
  EXPECT_EQ(msg("allow@domain=1.2.3.4"),
            "moat: error: --rule #1 \"allow@domain=1.2.3.4\" col 14: \"1.2.3.4\" is an IP address, not a name");
  EXPECT_EQ(msg("allow @any"), "moat: error: --rule #1 \"allow @any\" col 6: a rule contains no spaces");
  EXPECT_EQ(msg("allow"), "moat: error: --rule #1 \"allow\" col 6: missing \"@\" and a target; write \"allow@TARGET\"");
  EXPECT_EQ(msg("allow@"), "moat: error: --rule #1 \"allow@\" col 7: missing target after \"@\"");
  EXPECT_EQ(msg("allow@host:tcp:80:x"), "moat: error: --rule #1 \"allow@host:tcp:80:x\" col 18: unexpected \":x\" after the ports");
  EXPECT_EQ(msg("allow:ingress@dns"), "moat: error: --rule #1 \"allow:ingress@dns\" col 7: the dns macro is egress only");
  EXPECT_EQ(msg("allow@dns:tcp:53"),
            "moat: error: --rule #1 \"allow@dns:tcp:53\" col 15: the dns macro takes no ports (it means port 53); for DoT "
            "write \"allow@host:tcp:853\"");
  EXPECT_EQ(msg("allow@dns:icmp"), "moat: error: --rule #1 \"allow@dns:icmp\" col 11: the dns macro takes only tcp or udp");
  std::string long_label(64, 'a');
  EXPECT_EQ(bad("allow@" + long_label + ".com").what, "label longer than 63 octets");
}

TEST(RuleParse, ErrorIndexWithinValue) {
  RuleError e = bad("allow@any, deny@host:443 ,allow@public");
  EXPECT_EQ(e.rule_index_in_value, 1u);
  EXPECT_EQ(e.rule_text, "deny@host:443");
  EXPECT_EQ(e.column, 11u);
  EXPECT_EQ(e.hint, "write \"deny@host:tcp:443\"");
  e = bad("allow@any,");
  EXPECT_EQ(e.rule_index_in_value, 1u);
  EXPECT_EQ(e.what, "empty rule");
  EXPECT_EQ(bad("").what, "empty rule");
}

TEST(Names, Normalize) {
  EXPECT_EQ(*normalize_name("Example.COM."), "example.com");
  EXPECT_FALSE(normalize_name("example.com.."));
  EXPECT_FALSE(normalize_name(""));
  EXPECT_FALSE(normalize_name("."));
  EXPECT_FALSE(normalize_name("a b.com"));
  EXPECT_FALSE(normalize_name("example.com:443"));
  EXPECT_FALSE(normalize_name("2001:db8::1"));
  EXPECT_TRUE(normalize_name(std::string(63, 'a') + ".com"));
  std::string n253;
  for (int i = 0; i < 4; ++i) n253 += std::string(i < 3 ? 63 : 61, 'a') + (i < 3 ? "." : "");
  EXPECT_EQ(n253.size(), 253u);
  EXPECT_TRUE(normalize_name(n253));
  EXPECT_EQ(normalize_name(n253 + "a").error().what, "name longer than 253 octets");
  EXPECT_EQ(normalize_name("bücher.de").error().hint, "use the A-label (xn--…) form");
}

TEST(Target, MatchesName) {
  Rule s = one("allow@*.example.com");
  EXPECT_TRUE(s.target.matches_name("example.com"));
  EXPECT_TRUE(s.target.matches_name("a.b.EXAMPLE.com."));
  EXPECT_FALSE(s.target.matches_name("evilexample.com"));
  EXPECT_FALSE(s.target.matches_name("example.com.evil"));
  Rule d = one("allow@api.example.com");
  EXPECT_TRUE(d.target.matches_name("API.example.com"));
  EXPECT_FALSE(d.target.matches_name("x.api.example.com"));
}

TEST(Cidr, ContainsWithNat64AndMapped) {
  Rule r = one("deny@169.254.169.254");
  EXPECT_TRUE(r.target.cidr.contains(ip("169.254.169.254")));
  EXPECT_TRUE(r.target.cidr.contains(ip("64:ff9b::a9fe:a9fe")));
  EXPECT_TRUE(r.target.cidr.contains(ip("::ffff:169.254.169.254")));
  EXPECT_FALSE(r.target.cidr.contains(ip("64:ff9b:1::a9fe:a9fe")));
  Rule v6 = one("deny@[64:ff9b::/96]");
  EXPECT_TRUE(v6.target.cidr.contains(ip("64:ff9b::a9fe:a9fe")));
  EXPECT_FALSE(v6.target.cidr.contains(ip("169.254.169.254")));
  EXPECT_TRUE(one("allow@10.0.0.0/8").target.cidr.covers(one("allow@10.1.0.0/16").target.cidr));
  EXPECT_FALSE(one("allow@10.1.0.0/16").target.cidr.covers(one("allow@10.0.0.0/8").target.cidr));
  EXPECT_TRUE(one("allow@0.0.0.0/0").target.cidr.contains(ip("1.2.3.4")));
}

TEST(EditDistance, Basics) {
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("publc", "public"), 1u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
TEST(RulesText, CommentsBlankLinesAndCommaListsPerLine) {
  auto r = parse_rules_text("# header\n\n  allow@api.example.com:tcp:443 # the API\r\ndeny@*.ads.example, allow@public\n",
                            Origin::config, 20);
  ASSERT_TRUE(r) << r.error().front().error.what;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].text, "allow@api.example.com:tcp:443");
  EXPECT_EQ((*r)[2].origin, Origin::config);
}

TEST(RulesText, ErrorsNameLineColumnAndRuleNumberAndParsingGoesOn) {
  auto r = parse_rules_text("allow@public\nallow@a.example, bogus@x\n# ok\nalso-bad\n", Origin::cli, 20);
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().size(), 2u);
  EXPECT_EQ(r.error()[0].line, 2u);
  EXPECT_EQ(r.error()[0].column, 18u);  // "bogus@x" starts at column 18
  EXPECT_EQ(r.error()[0].rule_number, 3u);
  EXPECT_EQ(r.error()[1].line, 4u);
  EXPECT_EQ(r.error()[1].column, 1u);
  auto first = parse_rules_text("bad\nworse\n", Origin::cli, 1);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().size(), 1u);
}

}  // namespace moat::policy
