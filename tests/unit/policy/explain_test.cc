#include "policy/explain.h"

#include <gtest/gtest.h>

namespace moat::policy {
namespace {

Engine engine(std::string_view cli, std::optional<ProfileSet> profiles = std::nullopt) {
  PolicyInputs in;
  auto r = parse_rules(cli, Origin::cli);
  EXPECT_TRUE(r);
  in.cli = *r;
  in.cli_profiles = profiles;
  return Engine(resolve_policy(in), HostAddrs{{IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1))}});
}

IpAddr ip(std::string_view s) { return *IpAddr::parse(s); }

TEST(StaticPins, MatchesByNormalisedAddress) {
  StaticPins p;
  p.add("a.example", ip("::ffff:1.2.3.4"));
  p.add("b.example", ip("1.2.3.4"));
  EXPECT_TRUE(p.any_pin_matches(ip("1.2.3.4"), [](std::string_view n) { return n == "a.example"; }));
  EXPECT_FALSE(p.any_pin_matches(ip("1.2.3.5"), [](std::string_view) { return true; }));
  EXPECT_EQ(p.names_of(ip("::ffff:1.2.3.4")), (std::vector<std::string>{"a.example", "b.example"}));
}

// The R-CLI-8 example, line for line (rule #0 comes from the block list there; here from --rule).
TEST(ExplainReport, NameDestination) {
  Engine e = engine("deny@*.ads.example,allow@*.github.com:tcp:443", ProfileSet{});
  StaticPins pins;
  pins.add("api.github.com", ip("140.82.112.3"));
  ExplainRequest rq;
  rq.query.addr = ip("140.82.112.3");
  rq.query.port = 443;
  rq.name = "api.github.com";
  auto rep = explain_report(e, rq, pins, &pins);
  EXPECT_TRUE(rep.allowed);
  EXPECT_EQ(rep.verdict.rule, 1u);
  std::vector<std::string> want{
      "query    egress tcp 140.82.112.3:443 group=public name=api.github.com (sni) pins(140.82.112.3)={api.github.com}",
      "dns      api.github.com -> allow by rule #1 (cli) \"allow@*.github.com:tcp:443\"",
      "rebind   a private answer (10.0.0.1) for api.github.com would pass (R-DNS-8 exception)",
      "rule #0  cli    deny@*.ads.example           skip: name does not match",
      "rule #1  cli    allow@*.github.com:tcp:443   MATCH (sni matches, pin matches)",
      "verdict  allow (tenant) / allow (floor: none)     path: fast path + gate",
      "by       rule #1 (cli) \"allow@*.github.com:tcp:443\"",
      "no-name  allow by rule #1 (cli) \"allow@*.github.com:tcp:443\" (a first packet without SNI/Host: pins only)",
  };
  EXPECT_EQ(rep.lines, want);
}

TEST(ExplainReport, AddressDeniedByDefaultWithRebindOff) {
  Engine e = engine("allow@public:tcp:443");
  StaticPins pins;
  ExplainRequest rq;
  rq.query.addr = ip("169.254.169.254");
  rq.query.port = 80;
  auto rep = explain_report(e, rq, pins);
  EXPECT_FALSE(rep.allowed);
  EXPECT_EQ(rep.lines.front(), "query    egress tcp 169.254.169.254:80 group=metadata");
  EXPECT_EQ(rep.lines[rep.lines.size() - 2], "verdict  deny (tenant) / allow (floor: none)     path: reject at SYN");
  EXPECT_EQ(rep.lines.back(), "by       default_egress = deny");

  rq.name = "db.internal.example";
  rq.rebind_protection = false;
  rep = explain_report(e, rq, pins);
  EXPECT_EQ(rep.lines[1], "dns      db.internal.example -> allow by rule #1 (profile) \"allow@dns\"");
  EXPECT_EQ(rep.lines[2], "rebind   protection off (dns.rebind_protection = false)");
}

TEST(ExplainReport, RebindBlockedForAPrivateAnswerWithoutException) {
  Engine e = engine("allow@dns");
  StaticPins pins;
  ExplainRequest rq;
  rq.query.addr = ip("10.1.2.3");
  rq.query.port = 443;
  rq.name = "intranet.example";
  auto rep = explain_report(e, rq, pins);
  EXPECT_EQ(rep.lines[2], "rebind   a private answer (10.1.2.3) for intranet.example would be dropped by rebind protection");
}

TEST(ExplainReport, IngressAndIcmp) {
  Engine e = engine("allow:ingress@loopback:tcp:8080");
  StaticPins pins;
  ExplainRequest rq;
  rq.query.dir = Direction::ingress;
  rq.query.addr = ip("127.0.0.1");
  rq.query.port = 8080;
  auto rep = explain_report(e, rq, pins);
  EXPECT_TRUE(rep.allowed);
  EXPECT_EQ(rep.lines.front(), "query    ingress tcp from 127.0.0.1 to guest port 8080 group=loopback");
  EXPECT_EQ(rep.lines[rep.lines.size() - 2], "verdict  allow (tenant) / allow (floor: none)");

  ExplainRequest icmp;
  icmp.query.addr = ip("8.8.8.8");
  icmp.query.proto = Proto::icmpv4;
  rep = explain_report(e, icmp, pins);
  EXPECT_TRUE(rep.allowed);  // profile public
  EXPECT_EQ(rep.lines.front(), "query    egress icmpv4 8.8.8.8 group=public");
}

TEST(ExplainRequest, NameDestinationIsPinnedAndCombinationsAreChecked) {
  auto name_of = [](std::string_view f) { return "--" + std::string(f); };
  ExplainInputs in;
  in.dst = *parse_explain_dst("API.example.com:443");
  StaticPins pins;
  auto rq = make_explain_request(in, pins, name_of);
  ASSERT_TRUE(rq) << rq.error().what;
  EXPECT_EQ(rq->name, "api.example.com");
  EXPECT_EQ(rq->query.proto, Proto::tcp);
  EXPECT_EQ(pins.names_of(rq->query.addr), std::vector<std::string>{"api.example.com"});

  in.dst = *parse_explain_dst("[2001:db8::1]/icmp");
  StaticPins p2;
  rq = make_explain_request(in, p2, name_of);
  ASSERT_TRUE(rq);
  EXPECT_EQ(rq->query.proto, Proto::icmpv6);
  EXPECT_TRUE(rq->name.empty());

  in.ip = Ipv4Addr::from_octets(8, 8, 8, 8);
  rq = make_explain_request(in, p2, name_of);
  ASSERT_FALSE(rq);
  EXPECT_EQ(rq.error().field, "ip");
  EXPECT_EQ(rq.error().what, "only applies when --dst names a host");

  ExplainInputs ing;
  ing.ingress = true;
  ing.dst = *parse_explain_dst(":8080");
  rq = make_explain_request(ing, p2, name_of);
  ASSERT_FALSE(rq);
  EXPECT_EQ(rq.error().what, "needs --src (the peer address)");
  ing.src = Ipv4Addr::from_octets(192, 0, 2, 9);
  rq = make_explain_request(ing, p2, name_of);
  ASSERT_TRUE(rq);
  EXPECT_EQ(rq->query.dir, Direction::ingress);
  EXPECT_EQ(rq->query.port, std::optional<uint16_t>(8080));
}

}  // namespace
}  // namespace moat::policy
