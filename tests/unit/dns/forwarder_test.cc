// The forwarder pipeline against fake upstreams: real UDP sockets on 127.0.0.1 driven by a
// Loop on a FakeClock, so timeouts and deadlines are exact and instantaneous.
#include "dns/forwarder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "unit/dns/dns_builder.h"

namespace moat::dns {
namespace {

using namespace std::chrono_literals;
using test::Msg;
using test::query;

/// A UDP socket on 127.0.0.1 playing an upstream resolver.
struct FakeUpstream {
  UniqueFd fd;
  uint16_t port = 0;
  sockaddr_in last_peer{};
  FakeUpstream() : fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sl), 0);
    EXPECT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &sl), 0);
    port = ntohs(sa.sin_port);
  }
  Upstream upstream() const { return Upstream{IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)), port, false}; }
  /// The next query received, or empty.
  std::vector<std::byte> recv() {
    std::vector<std::byte> b(4096);
    socklen_t sl = sizeof last_peer;
    ssize_t n = ::recvfrom(fd.get(), b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&last_peer), &sl);
    if (n < 0) return {};
    b.resize(size_t(n));
    return b;
  }
  void reply(const std::vector<std::byte>& m) {
    ::sendto(fd.get(), m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&last_peer), sizeof last_peer);
  }
};

/// An answer to `q` (as received) with the given A records.
std::vector<std::byte> answer_for(const std::vector<std::byte>& q, std::vector<std::array<uint8_t, 4>> addrs,
                                  uint16_t rcode = 0, uint32_t ttl = 600) {
  auto pq = parse_query(Bytes(q.data(), q.size()));
  EXPECT_TRUE(pq);
  Msg m;
  m.header(pq->header.id, uint16_t(0x8180 | rcode), 1, uint16_t(addrs.size()), 0, 0);
  m.b.insert(m.b.end(), pq->question.name.wire_bytes().begin(), pq->question.name.wire_bytes().end());
  m.u16(pq->question.qtype).u16(pq->question.qclass);
  for (auto& a : addrs) m.ptr(12).a(ttl, a[0], a[1], a[2], a[3]);
  return m.b;
}

struct Sink final : AnswerSink {
  std::vector<std::vector<std::byte>> answers;
  void on_answer(const Client&, std::vector<std::byte> msg) override { answers.push_back(std::move(msg)); }
};

struct ForwarderTest : ::testing::Test {
  event::FakeClock clock;
  event::Loop loop{clock};
  Counters counters;
  std::unique_ptr<policy::EngineRef> engine;
  PinSet pins{loop, PinConfig{}};
  BlockList block;
  FakeUpstream up1, up2;
  Sink sink;
  std::unique_ptr<Forwarder> fwd;
  Client client;

  void make(std::string_view rules = "", ForwarderConfig cfg = {}, bool use_default_upstreams = true) {
    policy::PolicyInputs in;
    if (!rules.empty()) in.cli = *policy::parse_rules(rules, policy::Origin::cli);
    policy::HostAddrs host{{IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1))}};
    engine = std::make_unique<policy::EngineRef>(
        std::make_shared<const policy::Engine>(policy::resolve_policy(in), host));
    if (use_default_upstreams && cfg.upstreams.empty()) cfg.upstreams = {up1.upstream(), up2.upstream()};
    cfg.local_addrs = {IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1))};
    cfg.gateway_addrs = {IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1))};
    fwd = std::make_unique<Forwarder>(loop, counters, cfg, *engine, pins, block);
    client.guest = IpAddr(Ipv4Addr::from_octets(100, 96, 0, 2));
    client.guest_port = 40000;
    client.server = IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1));
    client.server_port = 53;
  }
  void spin(int n = 5) {
    for (int i = 0; i < n; ++i) loop.run_once(5ms);
  }
  std::vector<std::byte> recv_on(FakeUpstream& u) {
    for (int i = 0; i < 50; ++i) {
      auto q = u.recv();
      if (!q.empty()) return q;
      loop.run_once(2ms);
    }
    return {};
  }
  std::optional<Response> last() {
    if (sink.answers.empty()) return std::nullopt;
    return parse_response(Bytes(sink.answers.back().data(), sink.answers.back().size()));
  }
  bool wait_answer(size_t n = 1) {
    for (int i = 0; i < 100 && sink.answers.size() < n; ++i) loop.run_once(2ms);
    return sink.answers.size() >= n;
  }
  bool pinned(IpAddr a, std::string_view name) {
    return pins.any_pin_matches(a, [&](std::string_view n) { return n == name; });
  }
};

TEST_F(ForwarderTest, ForwardsWithFreshIdAndRestoresIt) {
  make();
  auto q = query(0x4242, "www.example.com", kTypeA, 1232);
  ASSERT_TRUE(fwd->on_query(client, q.bytes(), sink));
  auto got = recv_on(up1);
  ASSERT_FALSE(got.empty());
  auto pq = parse_query(Bytes(got.data(), got.size()));
  ASSERT_TRUE(pq);
  EXPECT_EQ(pq->question.name.text, "www.example.com");
  EXPECT_TRUE(pq->has_opt);  // otherwise unchanged
  // A reply with the wrong ID is ignored; the right one is relayed.
  auto bad = answer_for(got, {{6, 6, 6, 6}});
  store_be16(bad.data(), uint16_t(pq->header.id + 1));
  up1.reply(bad);
  spin();
  EXPECT_TRUE(sink.answers.empty());
  up1.reply(answer_for(got, {{93, 184, 216, 34}}));
  ASSERT_TRUE(wait_answer());
  auto r = last();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.id, 0x4242);
  ASSERT_EQ(r->records.size(), 1u);
  EXPECT_TRUE(pinned(IpAddr(Ipv4Addr::from_octets(93, 184, 216, 34)), "www.example.com"));
  EXPECT_FALSE(pinned(IpAddr(Ipv4Addr::from_octets(6, 6, 6, 6)), "www.example.com"));
  EXPECT_EQ(counters.get(Counter::dns_queries), 1u);
  EXPECT_EQ(counters.get(Counter::dns_pins_active), 1u);
  EXPECT_EQ(fwd->inflight(), 0u);
}

TEST_F(ForwarderTest, BlockedNameNeverForwarded) {
  ASSERT_TRUE(block.add("*.ads.test"));
  make();
  fwd->on_query(client, query(1, "x.ads.test", kTypeA).bytes(), sink);
  ASSERT_EQ(sink.answers.size(), 1u);  // answered at once
  EXPECT_EQ(last()->header.rcode(), Rcode::nxdomain);
  EXPECT_TRUE(last()->header.flags & flag::ra);
  EXPECT_EQ(counters.get(Counter::dns_blocked), 1u);
  spin();
  EXPECT_TRUE(up1.recv().empty());
}

TEST_F(ForwarderTest, NamePolicyDenyIsNxdomain) {
  make("deny@bad.example.com");
  std::vector<DnsEvent::Kind> events;
  fwd->set_audit([&](const DnsEvent& e) { events.push_back(e.kind); }, false);
  fwd->on_query(client, query(2, "BAD.example.com.", kTypeAaaa).bytes(), sink);
  ASSERT_EQ(sink.answers.size(), 1u);
  EXPECT_EQ(last()->header.rcode(), Rcode::nxdomain);
  EXPECT_EQ(counters.get(Counter::dns_denied), 1u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], DnsEvent::Kind::denied);
}

TEST_F(ForwarderTest, ProfileNoneDeniesEveryName) {
  make("");
  policy::PolicyInputs in;
  std::string_view none[] = {"none"};
  in.cli_profiles = *policy::parse_profiles(none);
  engine->replace(std::make_shared<const policy::Engine>(policy::resolve_policy(in), policy::HostAddrs{}));
  fwd->on_query(client, query(2, "www.example.com", kTypeA).bytes(), sink);
  EXPECT_EQ(last()->header.rcode(), Rcode::nxdomain);
}

TEST_F(ForwarderTest, RebindBlockedUnlessAllowed) {
  make();
  std::vector<std::string> audited;
  fwd->set_audit([&](const DnsEvent& e) { audited.push_back(e.address ? e.address->to_string() : ""); }, false);
  fwd->on_query(client, query(3, "evil.test", kTypeA).bytes(), sink);
  auto got = recv_on(up1);
  up1.reply(answer_for(got, {{93, 1, 1, 1}, {10, 1, 2, 3}}));
  ASSERT_TRUE(wait_answer());
  EXPECT_EQ(last()->header.rcode(), Rcode::nxdomain);
  EXPECT_EQ(last()->header.id, 3);
  EXPECT_EQ(counters.get(Counter::dns_rebind_blocked), 1u);
  EXPECT_EQ(audited, std::vector<std::string>{"10.1.2.3"});
  EXPECT_FALSE(pinned(IpAddr(Ipv4Addr::from_octets(93, 1, 1, 1)), "evil.test"));  // nothing pinned
  // Exception (b): an allow rule whose CIDR holds the address.
  make("allow@10.0.0.0/8:tcp:5432");
  fwd->on_query(client, query(4, "db.test", kTypeA).bytes(), sink);
  got = recv_on(up1);
  up1.reply(answer_for(got, {{10, 1, 2, 3}}));
  ASSERT_TRUE(wait_answer(2));
  EXPECT_EQ(last()->header.rcode(), Rcode::noerror);
  // Exception (a): an allow domain rule for the name.
  make("allow@loop.test");
  fwd->on_query(client, query(5, "loop.test", kTypeA).bytes(), sink);
  got = recv_on(up1);
  up1.reply(answer_for(got, {{127, 0, 0, 1}}));
  ASSERT_TRUE(wait_answer(3));
  EXPECT_EQ(last()->header.rcode(), Rcode::noerror);
}

TEST_F(ForwarderTest, RebindOffLetsPrivateThrough) {
  ForwarderConfig cfg;
  cfg.rebind_protection = false;
  make("", cfg);
  fwd->on_query(client, query(3, "priv.test", kTypeA).bytes(), sink);
  auto got = recv_on(up1);
  up1.reply(answer_for(got, {{192, 168, 1, 1}}));
  ASSERT_TRUE(wait_answer());
  EXPECT_EQ(last()->records.size(), 1u);
}

TEST_F(ForwarderTest, TimeoutFailsOverAndMarksUnhealthy) {
  make();
  fwd->on_query(client, query(6, "www.example.com", kTypeA).bytes(), sink);
  ASSERT_FALSE(recv_on(up1).empty());  // up1 stays silent
  clock.advance(2s);                   // dns.timeout
  spin();
  auto got = recv_on(up2);
  ASSERT_FALSE(got.empty());
  up2.reply(answer_for(got, {{1, 2, 3, 4}}));
  ASSERT_TRUE(wait_answer());
  EXPECT_EQ(last()->header.rcode(), Rcode::noerror);
  EXPECT_EQ(counters.get(Counter::dns_upstream_timeouts), 1u);
  EXPECT_EQ(counters.get(Counter::dns_failovers), 1u);
  // For the next 30 s up2 goes first.
  fwd->on_query(client, query(7, "www.example.com", kTypeA).bytes(), sink);
  ASSERT_FALSE(recv_on(up2).empty());
  EXPECT_TRUE(up1.recv().empty());
}

TEST_F(ForwarderTest, DeadlineIsServfail) {
  ForwarderConfig cfg;
  cfg.timeout = 2s;
  cfg.deadline = 3s;
  make("", cfg);
  fwd->on_query(client, query(8, "slow.test", kTypeA).bytes(), sink);
  ASSERT_FALSE(recv_on(up1).empty());
  clock.advance(2s);
  spin();
  ASSERT_FALSE(recv_on(up2).empty());
  EXPECT_TRUE(sink.answers.empty());
  clock.advance(1s);
  spin();
  ASSERT_EQ(sink.answers.size(), 1u);
  EXPECT_EQ(last()->header.rcode(), Rcode::servfail);
  EXPECT_EQ(last()->header.id, 8);
  EXPECT_EQ(counters.get(Counter::dns_servfail), 1u);
  EXPECT_EQ(fwd->inflight(), 0u);
}

TEST_F(ForwarderTest, UpstreamServfailIsAnAnswer) {
  make();
  fwd->on_query(client, query(9, "x.test", kTypeA).bytes(), sink);
  auto got = recv_on(up1);
  up1.reply(answer_for(got, {}, 2));
  ASSERT_TRUE(wait_answer());
  EXPECT_EQ(last()->header.rcode(), Rcode::servfail);
  EXPECT_EQ(counters.get(Counter::dns_failovers), 0u);
  EXPECT_TRUE(up2.recv().empty());
}

TEST_F(ForwarderTest, NoUpstreamIsServfail) {
  make("", {}, false);
  fwd->on_query(client, query(10, "x.test", kTypeA).bytes(), sink);
  ASSERT_EQ(sink.answers.size(), 1u);
  EXPECT_EQ(last()->header.rcode(), Rcode::servfail);
}

TEST_F(ForwarderTest, LocalNamesAndInactiveFamily) {
  ForwarderConfig cfg;
  cfg.ipv6_active = false;
  cfg.hosts = {{"db.internal", {IpAddr(Ipv4Addr::from_octets(10, 0, 0, 5))}}};
  make("", cfg);
  fwd->on_query(client, query(11, "Host.Moat.Internal", kTypeA).bytes(), sink);
  ASSERT_EQ(last()->records.size(), 1u);
  EXPECT_TRUE(last()->header.flags & flag::aa);
  fwd->on_query(client, query(12, "db.internal", kTypeA).bytes(), sink);
  ASSERT_EQ(last()->records.size(), 1u);
  EXPECT_EQ(last()->records[0].addr, IpAddr(Ipv4Addr::from_octets(10, 0, 0, 5)));  // exempt from rebind
  EXPECT_TRUE(pinned(IpAddr(Ipv4Addr::from_octets(10, 0, 0, 5)), "db.internal"));
  fwd->on_query(client, query(13, "www.example.com", kTypeAaaa).bytes(), sink);
  EXPECT_EQ(last()->header.rcode(), Rcode::noerror);
  EXPECT_EQ(last()->records.size(), 0u);
  EXPECT_EQ(counters.get(Counter::dns_nodata_family), 1u);
  spin();
  EXPECT_TRUE(up1.recv().empty());
}

TEST_F(ForwarderTest, MalformedQueries) {
  make();
  std::byte junk[3]{};
  EXPECT_FALSE(fwd->on_query(client, Bytes(junk, 3), sink));
  EXPECT_EQ(counters.dropped(DropReason::dns_malformed), 1u);
  Msg two;
  two.header(77, 0x0100, 2, 0, 0, 0).question("a.test", 1).question("b.test", 1);
  fwd->on_query(client, two.bytes(), sink);
  auto h = Header::parse(sink.answers.back());
  EXPECT_EQ(h->id, 77);
  EXPECT_EQ(h->rcode(), Rcode::formerr);
  Msg status;
  status.header(78, 0x1000, 1, 0, 0, 0).question("a.test", 1);
  fwd->on_query(client, status.bytes(), sink);
  EXPECT_EQ(last()->header.rcode(), Rcode::notimp);
  EXPECT_EQ(last()->question.name.text, "a.test");
}

TEST_F(ForwarderTest, TruncatesUdpToGuestLimit) {
  make();
  fwd->on_query(client, query(14, "big.test", kTypeA).bytes(), sink);  // no EDNS: 512
  auto got = recv_on(up1);
  std::vector<std::array<uint8_t, 4>> many;
  for (uint8_t i = 0; i < 40; ++i) many.push_back({93, 184, 217, i});
  up1.reply(answer_for(got, many));
  ASSERT_TRUE(wait_answer());
  EXPECT_LE(sink.answers.back().size(), 512u);
  EXPECT_TRUE(last()->header.tc());
  EXPECT_EQ(counters.get(Counter::dns_truncated), 1u);
  // Pins still come from the whole answer.
  EXPECT_TRUE(pinned(IpAddr(Ipv4Addr::from_octets(93, 184, 217, 39)), "big.test"));
}

TEST_F(ForwarderTest, InflightLimitDropsUdp) {
  ForwarderConfig cfg;
  cfg.max_inflight = 1;
  make("", cfg);
  EXPECT_TRUE(fwd->on_query(client, query(15, "a.test", kTypeA).bytes(), sink));
  EXPECT_FALSE(fwd->can_accept());
  EXPECT_FALSE(fwd->on_query(client, query(16, "b.test", kTypeA).bytes(), sink));
  EXPECT_EQ(counters.get(Counter::dns_dropped_overload), 1u);
  fwd->cancel(sink);
  EXPECT_TRUE(fwd->can_accept());
}

TEST_F(ForwarderTest, DirectQueriesFollowPolicy) {
  make("allow@127.0.0.1:udp");
  Client direct = client;
  direct.server = IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1));
  direct.server_port = up2.port;  // the resolver the guest addressed
  fwd->on_query(direct, query(17, "www.example.com", kTypeA).bytes(), sink);
  auto got = recv_on(up2);
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(up1.recv().empty());
  up2.reply(answer_for(got, {{93, 184, 216, 99}}));
  ASSERT_TRUE(wait_answer());
  EXPECT_EQ(last()->records[0].addr, IpAddr(Ipv4Addr::from_octets(93, 184, 216, 99)));
  // Not allowed by policy: NXDOMAIN, nothing sent.
  Client other = direct;
  other.server = IpAddr(Ipv4Addr::from_octets(10, 9, 9, 9));
  fwd->on_query(other, query(18, "www.example.com", kTypeA).bytes(), sink);
  EXPECT_EQ(last()->header.rcode(), Rcode::nxdomain);
}

TEST_F(ForwarderTest, DirectQueriesUpstreamMode) {
  ForwarderConfig cfg;
  cfg.direct_queries = DirectQueries::upstream;
  make("", cfg);
  Client other = client;
  other.server = IpAddr(Ipv4Addr::from_octets(8, 8, 8, 8));
  fwd->on_query(other, query(19, "www.example.com", kTypeA).bytes(), sink);
  EXPECT_FALSE(recv_on(up1).empty());
}

}  // namespace
}  // namespace moat::dns
