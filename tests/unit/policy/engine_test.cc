#include "policy/engine.h"

#include <gtest/gtest.h>

#include <utility>

namespace moat::policy {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

/// Pins as a flat list of (address, name) pairs.
class MapPins final : public PinLookup {
 public:
  MapPins(std::initializer_list<std::pair<const char*, const char*>> pins) {
    for (auto [a, n] : pins) pins_.emplace_back(ip(a), n);
  }
  bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view)> pred) const override {
    for (const auto& [pa, n] : pins_)
      if (pa == normalize(a) && pred(n)) return true;
    return false;
  }

 private:
  std::vector<std::pair<IpAddr, std::string>> pins_;
};

const HostAddrs kHost{{ip("100.96.0.1"), ip("fd42:6d73:62::1")}};

Engine make(std::string_view rules, Action egress = Action::deny, Action ingress = Action::allow, bool pin = true) {
  Policy p;
  p.default_egress = egress;
  p.default_ingress = ingress;
  p.sni_requires_pin = pin;
  p.profiles.public_ = true;
  if (!rules.empty()) p.rules = *parse_rules(rules, Origin::cli);
  return Engine(std::move(p), kHost);
}

Query egress(const char* a, std::optional<uint16_t> port, Proto proto = Proto::tcp, NameSource s = NameSource::none()) {
  return Query{Direction::egress, ip(a), port, proto, s};
}

const NoPins kNoPins;

TEST(Engine, FirstMatchAndDefaults) {
  Engine e = make("deny@10.1.0.0/16,allow@private,allow@public:tcp:443");
  EXPECT_EQ(e.decide(egress("10.1.2.3", 80), kNoPins), (Verdict{Action::deny, 0}));
  EXPECT_EQ(e.decide(egress("10.2.0.1", 80), kNoPins), (Verdict{Action::allow, 1}));
  EXPECT_EQ(e.decide(egress("8.8.8.8", 443), kNoPins), (Verdict{Action::allow, 2}));
  EXPECT_EQ(e.decide(egress("8.8.8.8", 80), kNoPins), (Verdict{Action::deny, std::nullopt}));
  EXPECT_EQ(e.decide(egress("8.8.8.8", 443, Proto::udp), kNoPins).rule, std::nullopt);
  // Ingress uses its own default and only ingress/any rules.
  Query in{Direction::ingress, ip("10.2.0.1"), 8080, Proto::tcp, {}};
  EXPECT_EQ(e.decide(in, kNoPins), (Verdict{Action::allow, std::nullopt}));
  Engine e2 = make("deny:any@private,allow:ingress@loopback:tcp:8080", Action::deny, Action::deny);
  EXPECT_EQ(e2.decide(in, kNoPins), (Verdict{Action::deny, 0}));
  in.addr = ip("127.0.0.1");
  EXPECT_EQ(e2.decide(in, kNoPins), (Verdict{Action::allow, 1}));
  in.port = 8081;
  EXPECT_EQ(e2.decide(in, kNoPins), (Verdict{Action::deny, std::nullopt}));
}

TEST(Engine, UnspecifiedAlwaysRefused) {
  Engine e = make("allow@any", Action::allow);
  EXPECT_EQ(e.decide(egress("0.0.0.0", 80), kNoPins), (Verdict{Action::deny, std::nullopt}));
  EXPECT_EQ(e.decide(egress("::", 80), kNoPins), (Verdict{Action::deny, std::nullopt}));
  EXPECT_EQ(e.select_path(ip("0.0.0.0"), 80, kNoPins), TcpPath::reject);
}

TEST(Engine, PortsNeverMatchIcmp) {
  Engine e = make("allow@public:any:1-65535,allow@private:icmp");
  EXPECT_FALSE(e.decide(egress("8.8.8.8", std::nullopt, Proto::icmpv4), kNoPins).rule);
  EXPECT_EQ(e.decide(egress("10.0.0.1", std::nullopt, Proto::icmpv4), kNoPins).rule, 1u);
  EXPECT_EQ(e.decide(egress("fd00::1", std::nullopt, Proto::icmpv6), kNoPins).rule, 1u);
  EXPECT_FALSE(e.decide(egress("fd00::1", 53, Proto::udp), kNoPins).rule);
}

TEST(Engine, GroupsAndNat64InRules) {
  Engine e = make("deny@169.254.169.254,allow@any", Action::deny);
  EXPECT_EQ(e.decide(egress("64:ff9b::a9fe:a9fe", 80), kNoPins), (Verdict{Action::deny, 0}));
  EXPECT_EQ(e.decide(egress("::ffff:169.254.169.254", 80), kNoPins), (Verdict{Action::deny, 0}));
  Engine g = make("deny@metadata,allow@host");
  EXPECT_EQ(g.decide(egress("fd00:ec2::254", 80), kNoPins), (Verdict{Action::deny, 0}));
  EXPECT_EQ(g.decide(egress("100.96.0.1", 80), kNoPins), (Verdict{Action::allow, 1}));
  EXPECT_EQ(g.group_of(ip("64:ff9b::a9fe:a9fe")), Group::metadata);
}

// R-POL-7's table, row by row.
TEST(Engine, NameSourceTable) {
  const MapPins pins{{"140.82.112.3", "api.github.com"}};
  Engine allow = make("allow@*.github.com:tcp:443");
  Engine deny = make("deny@*.github.com", Action::allow);
  // S = none: both need a pin.
  EXPECT_TRUE(allow.decide(egress("140.82.112.3", 443), pins).rule);
  EXPECT_FALSE(allow.decide(egress("140.82.112.4", 443), pins).rule);
  EXPECT_TRUE(deny.decide(egress("140.82.112.3", 443), pins).rule);
  EXPECT_FALSE(deny.decide(egress("140.82.112.4", 443), pins).rule);
  // S = claimed(N): the SNI-spoof defence — an allow needs m(N) and a pin...
  auto sni = NameSource::claimed("API.github.com");
  EXPECT_EQ(allow.decide(egress("140.82.112.3", 443, Proto::tcp, sni), pins), (Verdict{Action::allow, 0}));
  EXPECT_EQ(allow.decide(egress("1.2.3.4", 443, Proto::tcp, sni), pins), (Verdict{Action::deny, std::nullopt}));
  EXPECT_FALSE(allow.decide(egress("140.82.112.3", 443, Proto::tcp, NameSource::claimed("evil.com")), pins).rule);
  // ...a deny needs only the name.
  EXPECT_EQ(deny.decide(egress("1.2.3.4", 443, Proto::tcp, sni), pins), (Verdict{Action::deny, 0}));
  EXPECT_FALSE(deny.decide(egress("140.82.112.3", 443, Proto::tcp, NameSource::claimed("x.org")), pins).rule);
  // sni_requires_pin = false: allow by name alone.
  Engine loose = make("allow@*.github.com:tcp:443", Action::deny, Action::allow, false);
  EXPECT_EQ(loose.decide(egress("1.2.3.4", 443, Proto::tcp, sni), pins), (Verdict{Action::allow, 0}));
  // S = connect(N): m(N) only, for both actions.
  auto con = NameSource::connect("api.github.com");
  EXPECT_EQ(allow.decide(egress("1.2.3.4", 443, Proto::tcp, con), pins), (Verdict{Action::allow, 0}));
  EXPECT_EQ(deny.decide(egress("1.2.3.4", 443, Proto::tcp, con), pins), (Verdict{Action::deny, 0}));
}

TEST(Engine, Dns) {
  Engine e = make("deny@*.ads.example,allow@api.example.com:tcp:443,deny@dns:tcp,allow@dns,allow@8.8.8.8:udp:53");
  EXPECT_EQ(e.decide_dns("x.ads.example", Proto::udp, 53), (Verdict{Action::deny, 0}));
  // Domain rules ignore their protocol and port filters.
  EXPECT_EQ(e.decide_dns("API.example.com.", Proto::udp, 53), (Verdict{Action::allow, 1}));
  EXPECT_EQ(e.decide_dns("other.example", Proto::tcp, 53), (Verdict{Action::deny, 2}));
  EXPECT_EQ(e.decide_dns("other.example", Proto::udp, 53), (Verdict{Action::allow, 3}));
  // Port 853: the dns macro (port 53) does not match; CIDR rules never match.
  EXPECT_EQ(e.decide_dns("other.example", Proto::udp, 853), (Verdict{Action::deny, std::nullopt}));
  // Invalid names only match any/host rules.
  Engine f = make("allow@*.example.com,allow@host:udp");
  EXPECT_EQ(f.decide_dns("bad name.example.com", Proto::udp, 53), (Verdict{Action::allow, 1}));
  EXPECT_EQ(f.decide_dns("bad name.example.com", Proto::tcp, 53), (Verdict{Action::deny, std::nullopt}));
  Engine g = make("allow:ingress@any", Action::allow);
  EXPECT_EQ(g.decide_dns("x.com", Proto::udp, 53), (Verdict{Action::allow, std::nullopt}));
}

TEST(Engine, PathSelectionTable) {
  const MapPins pins{{"140.82.112.3", "api.github.com"}};
  // allow, allow only -> fast path
  EXPECT_EQ(make("allow@public").select_path(ip("8.8.8.8"), 443, pins), TcpPath::fast);
  // allow, a deny reachable via SNI -> gate
  EXPECT_EQ(make("deny@*.ads.example,allow@public").select_path(ip("8.8.8.8"), 443, pins), TcpPath::gate);
  // a deny after the deciding rule is unreachable -> fast
  EXPECT_EQ(make("allow@public,deny@*.ads.example").select_path(ip("8.8.8.8"), 443, pins), TcpPath::fast);
  // A pinned allow matches with S = none too, but another first-flight name reaches the
  // default deny -> gate.
  EXPECT_EQ(make("allow@*.github.com:tcp:443").select_path(ip("140.82.112.3"), 443, pins), TcpPath::gate);
  EXPECT_EQ(make("allow@*.github.com:tcp:443").select_path(ip("140.82.112.3"), 443, kNoPins), TcpPath::reject);
  // deny, an allow reachable -> inspect: a shared CDN address pinned to a blocked and an
  // allowed name is denied without a name, allowed with the good SNI.
  const MapPins cdn{{"151.101.1.1", "x.ads.example"}, {"151.101.1.1", "a.cdn.example"}};
  Engine shared = make("deny@*.ads.example,allow@*.cdn.example");
  EXPECT_EQ(shared.decide(egress("151.101.1.1", 443), cdn), (Verdict{Action::deny, 0}));
  EXPECT_EQ(shared.decide(egress("151.101.1.1", 443, Proto::tcp, NameSource::claimed("a.cdn.example")), cdn),
            (Verdict{Action::allow, 1}));
  EXPECT_EQ(shared.select_path(ip("151.101.1.1"), 443, cdn), TcpPath::inspect);
  // without a pin requirement any address could be allowed by an SNI
  Engine loose = make("allow@*.github.com:tcp:443", Action::deny, Action::allow, false);
  EXPECT_EQ(loose.select_path(ip("1.2.3.4"), 443, kNoPins), TcpPath::inspect);
  EXPECT_EQ(loose.select_path(ip("1.2.3.4"), 80, kNoPins), TcpPath::reject);
  // deny, deny only -> reject
  EXPECT_EQ(make("allow@public").select_path(ip("10.0.0.1"), 22, pins), TcpPath::reject);
}

TEST(Engine, RebindException) {
  Engine e = make("allow@*.corp.example,allow@private:tcp:5432,deny@10.9.0.0/16,allow@10.0.0.0/8,allow@dns,allow@public");
  // (a) a name allowed by a domain/suffix rule.
  Verdict v = e.decide_dns("db.corp.example", Proto::udp, 53);
  EXPECT_EQ(v.rule, 0u);
  EXPECT_TRUE(e.rebind_exception(v, ip("10.9.0.1")));
  // (b) first CIDR/group rule containing the address; protocol/port ignored.
  Verdict macro = e.decide_dns("x.org", Proto::udp, 53);
  EXPECT_EQ(macro.rule, 4u);
  EXPECT_TRUE(e.rebind_exception(macro, ip("192.168.1.1")));
  Engine f = make("deny@10.9.0.0/16,allow@private:tcp:5432,allow@dns");
  EXPECT_FALSE(f.rebind_exception(f.decide_dns("x.org", Proto::udp, 53), ip("10.9.0.1")));
  EXPECT_TRUE(f.rebind_exception(f.decide_dns("x.org", Proto::udp, 53), ip("::ffff:10.8.0.1")));
  // The dns macro and defaults never grant.
  Engine g = make("allow@dns", Action::allow);
  EXPECT_FALSE(g.rebind_exception(g.decide_dns("x.org", Proto::udp, 53), ip("100.96.0.1")));
  EXPECT_FALSE(g.rebind_exception(Verdict{Action::allow, std::nullopt}, ip("10.0.0.1")));
}

TEST(Engine, ExplainLines) {
  const MapPins pins{{"140.82.112.3", "api.github.com"}};
  Policy p;
  p.rules = *parse_rules("deny@*.ads.example", Origin::block);
  auto cli = *parse_rules("allow@*.github.com:tcp:443,allow:ingress@any,allow@any:udp,allow@any:tcp:80,allow@10.0.0.0/8",
                          Origin::cli);
  p.rules.insert(p.rules.end(), cli.begin(), cli.end());
  Engine e(std::move(p), kHost);
  auto q = egress("140.82.112.3", 443, Proto::tcp, NameSource::claimed("api.github.com"));
  auto lines = e.explain(q, pins);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(format_explain_line(lines[0]),
            "rule #0  block  deny@*.ads.example           skip: name does not match");
  EXPECT_EQ(format_explain_line(lines[1]),
            "rule #1  cli    allow@*.github.com:tcp:443   MATCH (sni matches, pin matches)");
  EXPECT_EQ(format_explain_line(lines[2]), "rule #2  cli    allow:ingress@any            skip: direction");
  EXPECT_EQ(format_explain_line(lines[3]), "rule #3  cli    allow@any:udp                skip: protocol");
  EXPECT_EQ(format_explain_line(lines[4]), "rule #4  cli    allow@any:tcp:80             skip: port");
  EXPECT_EQ(format_explain_line(lines[5]), "rule #5  cli    allow@10.0.0.0/8             skip: target");
  // No pin for the claimed name at another address; S = none without pins.
  lines = e.explain(egress("1.2.3.4", 443, Proto::tcp, NameSource::claimed("api.github.com")), pins);
  EXPECT_EQ(lines[1].outcome, MatchOutcome::skip_no_pin);
  EXPECT_EQ(format_explain_line(lines[1]), "rule #1  cli    allow@*.github.com:tcp:443   skip: sni matches, no pin");
  lines = e.explain(egress("1.2.3.4", 443), pins);
  EXPECT_EQ(format_explain_line(lines[1]), "rule #1  cli    allow@*.github.com:tcp:443   skip: no pin");
  lines = e.explain(egress("140.82.112.3", 443), pins);
  EXPECT_EQ(format_explain_line(lines[1]), "rule #1  cli    allow@*.github.com:tcp:443   MATCH (pin matches)");
  // explain agrees with decide: the first MATCH line is the verdict's rule.
  for (const auto& addr : {"140.82.112.3", "1.2.3.4", "10.1.1.1"}) {
    auto qq = egress(addr, 443, Proto::tcp, NameSource::claimed("api.github.com"));
    auto ls = e.explain(qq, pins);
    std::optional<size_t> first;
    for (const auto& l : ls)
      if (l.outcome == MatchOutcome::matched && !first) first = l.index;
    EXPECT_EQ(first, e.decide(qq, pins).rule) << addr;
  }
}

TEST(Engine, Lint) {
  Policy p;
  p.rules = *parse_rules(
      "allow@10.0.0.0/8,allow@10.1.0.0/16:tcp,allow@*.example.com,allow@api.example.com:tcp:443,"
      "deny@*.example.com,allow@metadata,allow@127.0.0.1,deny:any@private,deny@private:udp,allow@tcp.example:tcp:80+443,"
      "allow@tcp.example:tcp:443",
      Origin::cli);
  p.sni_requires_pin = false;
  p.profiles.all = true;
  Engine e(std::move(p), kHost);
  auto w = e.lint();
  std::vector<std::string> want = {
      "rule #1 \"allow@10.1.0.0/16:tcp\" is shadowed by rule #0 \"allow@10.0.0.0/8\" and never matches",
      "rule #3 \"allow@api.example.com:tcp:443\" is shadowed by rule #2 \"allow@*.example.com\" and never matches",
      "rule #8 \"deny@private:udp\" is shadowed by rule #7 \"deny:any@private\" and never matches",
      "rule #10 \"allow@tcp.example:tcp:443\" is shadowed by rule #9 \"allow@tcp.example:tcp:80+443\" and never matches",
      "rule #5 \"allow@metadata\" allows metadata addresses",
      "rule #6 \"allow@127.0.0.1\" allows loopback addresses",
      "profile \"all\" allows all traffic (rebind protection and the refused DNS ports still apply)",
      "policy.sni_requires_pin = false: an SNI or Host alone can make any address reachable",
  };
  EXPECT_EQ(w, want);
  // An empty profile set with no DNS allow rule.
  Policy q;
  q.rules = *parse_rules("allow@public:tcp:443", Origin::cli);
  EXPECT_EQ(Engine(q, kHost).lint(),
            (std::vector<std::string>{
                "the profile set is empty (only explicit rules apply) and no rule allows DNS; add \"allow@dns\""}));
  q.rules = *parse_rules("allow@dns:udp", Origin::cli);
  EXPECT_TRUE(Engine(q, kHost).lint().empty());
}

}  // namespace
}  // namespace moat::policy

namespace moat::policy {
namespace {

/// The block-list prefix is served from hash maps; every verdict must equal the linear scan
/// the same rules give when they are not a block prefix (origin cli: no index).
TEST(Engine, BlockIndexAgreesWithTheScan) {
  const char* list = "deny@ads.example.com,deny@*.tracker.net,deny@Evil.ORG,deny@*.sub.evil.org,allow@public,allow@dns";
  Policy indexed_p;
  indexed_p.default_egress = Action::deny;
  indexed_p.rules = *parse_rules(list, Origin::cli);
  for (size_t i = 0; i < 4; ++i) indexed_p.rules[i].origin = Origin::block;
  Policy scan_p = indexed_p;
  for (auto& r : scan_p.rules) r.origin = Origin::cli;
  const Engine indexed(indexed_p, kHost), scan(scan_p, kHost);
  const MapPins pins{{"44.1.1.1", "ads.example.com"}, {"44.1.1.2", "x.y.tracker.net"}, {"44.1.1.3", "tracker.net"},
                     {"44.1.1.4", "nottracker.net"}, {"44.1.1.5", "ok.example.com"}, {"44.1.1.6", "a.sub.evil.org"}};
  const char* addrs[] = {"44.1.1.1", "44.1.1.2", "44.1.1.3", "44.1.1.4", "44.1.1.5", "44.1.1.6", "44.1.1.9"};
  const char* names[] = {"ads.example.com", "ADS.example.com.", "b.tracker.net", "tracker.net", "xtracker.net",
                         "evil.org", "a.evil.org", "deep.a.sub.evil.org", "sub.evil.org", "example.com"};
  for (const char* a : addrs) {
    for (Proto pr : {Proto::tcp, Proto::udp, Proto::icmpv4}) {
      std::optional<uint16_t> port = pr == Proto::icmpv4 ? std::nullopt : std::optional<uint16_t>(443);
      EXPECT_EQ(indexed.decide(egress(a, port, pr), pins), scan.decide(egress(a, port, pr), pins)) << a;
      for (const char* n : names) {
        EXPECT_EQ(indexed.decide(egress(a, port, pr, NameSource::claimed(n)), pins),
                  scan.decide(egress(a, port, pr, NameSource::claimed(n)), pins))
            << a << " " << n;
        EXPECT_EQ(indexed.decide(egress(a, port, pr, NameSource::connect(n)), pins),
                  scan.decide(egress(a, port, pr, NameSource::connect(n)), pins))
            << a << " " << n;
      }
    }
    EXPECT_EQ(indexed.select_path(ip(a), 443, pins), scan.select_path(ip(a), 443, pins)) << a;
  }
  for (const char* n : names) {
    EXPECT_EQ(indexed.decide_dns(n, Proto::udp, 53), scan.decide_dns(n, Proto::udp, 53)) << n;
    EXPECT_EQ(indexed.rebind_exception(indexed.decide_dns(n, Proto::udp, 53), ip("10.0.0.1")),
              scan.rebind_exception(scan.decide_dns(n, Proto::udp, 53), ip("10.0.0.1")))
        << n;
  }
  // Ingress never meets block rules (they are egress).
  Query in{Direction::ingress, ip("44.1.1.1"), 80, Proto::tcp, NameSource::none()};
  EXPECT_EQ(indexed.decide(in, pins), scan.decide(in, pins));
  // Explain folds the block list into one line naming the entry that matched.
  auto lines = indexed.explain(egress("44.1.1.2", 443), pins);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].outcome, MatchOutcome::matched);
  EXPECT_EQ(lines[0].index, 1u);
  EXPECT_EQ(lines[0].text, "deny@*.tracker.net");
  lines = indexed.explain(egress("44.1.1.5", 443), pins);
  EXPECT_NE(lines[0].outcome, MatchOutcome::matched);
  EXPECT_NE(lines[0].text.find("4 entries"), std::string::npos);
}

}  // namespace
}  // namespace moat::policy
