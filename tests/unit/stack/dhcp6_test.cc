// DHCPv6 server (R-NET-8).
#include "stack_fixture.h"
#include "wire/dhcpv6.h"

namespace moat::stack {
namespace {

using test::Buf;
using Type = wire::Dhcpv6Type;

struct Dhcp6Frame {
  test::Ipv6Frame outer;
  wire::UdpRepr udp;
  wire::Dhcpv6Repr msg;
};

std::optional<Dhcp6Frame> as_dhcp6(Bytes f) {
  auto o = test::as_ipv6(f);
  if (!o || o->ip.next_header != wire::kProtoUdp) return std::nullopt;
  Bytes payload;
  auto u = wire::UdpRepr::parse(o->l4, &payload);
  if (!u) return std::nullopt;
  auto m = wire::Dhcpv6Repr::parse(payload);
  if (!m) return std::nullopt;
  return Dhcp6Frame{*o, *u, *m};
}

const Buf kClientDuid = test::to_buf(std::as_bytes(std::span<const uint8_t>(
    std::initializer_list<uint8_t>{0x00, 0x01, 0x00, 0x01, 0x2e, 0x8f, 0x3c, 0x1a, 0x02, 0x6d, 0x6f, 0, 0, 2})));
// DUID-LL of the default gateway MAC 02:6d:6f:00:00:01.
const Buf kServerDuid = test::to_buf(std::as_bytes(std::span<const uint8_t>(
    std::initializer_list<uint8_t>{0x00, 0x03, 0x00, 0x01, 0x02, 0x6d, 0x6f, 0, 0, 1})));

class Dhcp6Test : public StackTest {
 protected:
  void SetUp() override {
    cfg.seed = 42;
    cfg.search_domains = {"corp.example"};
    make();
  }
  wire::Dhcpv6Repr msg(Type t) const {
    wire::Dhcpv6Repr m;
    m.type = t;
    m.transaction_id = 0x123456;
    m.client_id = test::span(kClientDuid);
    return m;
  }
  wire::Dhcpv6IaNa ia(std::optional<Ipv6Addr> addr = std::nullopt) const {
    wire::Dhcpv6IaNa a;
    a.iaid = 0x6f000002;
    if (addr) a.addr = wire::Dhcpv6IaAddr{*addr, 0, 0};
    return a;
  }
  Buf frame(const wire::Dhcpv6Repr& m, std::optional<Ipv6Addr> src = std::nullopt) const {
    Buf payload(m.len());
    EXPECT_TRUE(m.emit(MutBytes(payload.data(), payload.size())));
    return g.udp6(wire::kDhcpv6AllServers, wire::kDhcpv6ClientPort, wire::kDhcpv6ServerPort, test::span(payload),
                  src.value_or(g.guest_ll()));
  }
  /// Feeds `m` and returns the one reply.
  std::optional<Dhcp6Frame> exchange(const wire::Dhcpv6Repr& m) {
    sink.frames.clear();
    feed(frame(m));
    if (sink.frames.size() != 1) return std::nullopt;
    return as_dhcp6(out(0));
  }
  void expect_addressing(const Dhcp6Frame& r) const {
    EXPECT_EQ(r.outer.eth.dst, g.guest_mac);
    EXPECT_EQ(r.outer.ip.src, g.gateway_ll());
    EXPECT_EQ(r.outer.ip.dst, g.guest_ll());
    EXPECT_EQ(r.udp.src_port, 547);
    EXPECT_EQ(r.udp.dst_port, 546);
    EXPECT_EQ(r.msg.transaction_id, 0x123456u);
    EXPECT_TRUE(test::bytes_equal(r.msg.server_id, test::span(kServerDuid)));
    EXPECT_TRUE(test::bytes_equal(r.msg.client_id, test::span(kClientDuid)));
  }
  void expect_lease(const Dhcp6Frame& r) const {
    ASSERT_TRUE(r.msg.ia_na);
    EXPECT_EQ(r.msg.ia_na->iaid, 0x6f000002u);
    EXPECT_EQ(r.msg.ia_na->t1, 7200u);
    EXPECT_EQ(r.msg.ia_na->t2, 11520u);
    ASSERT_TRUE(r.msg.ia_na->addr);
    EXPECT_EQ(r.msg.ia_na->addr->addr, cfg.guest6);
    EXPECT_EQ(r.msg.ia_na->addr->preferred_lifetime, 14400u);
    EXPECT_EQ(r.msg.ia_na->addr->valid_lifetime, 86400u);
  }
};

TEST_F(Dhcp6Test, InformationRequestGetsDnsAndDomains) {
  wire::Dhcpv6Repr m = msg(Type::information_request);
  auto r = exchange(m);
  ASSERT_TRUE(r);
  expect_addressing(*r);
  EXPECT_EQ(r->msg.type, Type::reply);
  EXPECT_EQ(r->msg.information_refresh_time, 86400u);
  EXPECT_FALSE(r->msg.ia_na);
  // Byte-exact against an independently built Reply (covers options 23 and 24).
  wire::Dhcpv6Repr e;
  e.type = Type::reply;
  e.transaction_id = 0x123456;
  e.server_id = test::span(kServerDuid);
  e.client_id = test::span(kClientDuid);
  const Ipv6Addr dns[] = {cfg.dns6};
  e.dns_servers = dns;
  e.domain_list = std::span<const std::string>(cfg.search_domains);
  e.information_refresh_time = 86400;
  Buf want(e.len());
  ASSERT_TRUE(e.emit(MutBytes(want.data(), want.size())));
  Bytes payload = r->outer.l4.subspan(wire::UdpRepr::kHeaderLen);
  EXPECT_TRUE(test::bytes_equal(payload, test::span(want)));
  EXPECT_EQ(counters.get(Counter::dhcp6_replies), 1u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(Dhcp6Test, InformationRequestWithoutClientIdIsAnswered) {
  wire::Dhcpv6Repr m = msg(Type::information_request);
  m.client_id = {};
  auto r = exchange(m);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->msg.client_id.empty());
}

TEST_F(Dhcp6Test, StatelessIgnoresSolicit) {
  wire::Dhcpv6Repr m = msg(Type::solicit);
  m.ia_na = ia();
  feed(frame(m));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::dhcp6_ignored), 1u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(Dhcp6Test, OffServesNothing) {
  cfg.dhcpv6 = Dhcpv6Mode::off;
  make();
  feed(frame(msg(Type::information_request)));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_ignored(Counter::ignored_multicast);
}

TEST_F(Dhcp6Test, InactiveIpv6ServesNothing) {
  cfg.ipv6_active = false;
  make();
  feed(frame(msg(Type::information_request)));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::dhcp6_replies), 0u);
}

TEST_F(Dhcp6Test, StatefulSolicitRequestRenewRebind) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  wire::Dhcpv6Repr s = msg(Type::solicit);
  s.ia_na = ia();
  auto adv = exchange(s);
  ASSERT_TRUE(adv);
  expect_addressing(*adv);
  EXPECT_EQ(adv->msg.type, Type::advertise);
  EXPECT_EQ(adv->msg.preference, 255);
  EXPECT_FALSE(adv->msg.rapid_commit);
  expect_lease(*adv);

  for (Type t : {Type::request, Type::renew}) {
    wire::Dhcpv6Repr q = msg(t);
    q.server_id = test::span(kServerDuid);
    q.ia_na = ia(cfg.guest6);
    auto rep = exchange(q);
    ASSERT_TRUE(rep) << int(t);
    expect_addressing(*rep);
    EXPECT_EQ(rep->msg.type, Type::reply);
    expect_lease(*rep);
  }
  wire::Dhcpv6Repr rb = msg(Type::rebind);
  rb.ia_na = ia(cfg.guest6);
  auto rep = exchange(rb);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->msg.type, Type::reply);
  expect_lease(*rep);
  EXPECT_EQ(counters.get(Counter::dhcp6_advertises), 1u);
  EXPECT_EQ(counters.get(Counter::dhcp6_replies), 3u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(Dhcp6Test, RapidCommitSolicitGetsReply) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  wire::Dhcpv6Repr s = msg(Type::solicit);
  s.ia_na = ia();
  s.rapid_commit = true;
  auto r = exchange(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->msg.type, Type::reply);
  EXPECT_TRUE(r->msg.rapid_commit);
  expect_lease(*r);
}

TEST_F(Dhcp6Test, ConfirmChecksOnLink) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  wire::Dhcpv6Repr c = msg(Type::confirm);
  c.ia_na = ia(*Ipv6Addr::parse("fd42:6d73:62::1234"));
  auto r = exchange(c);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->msg.status, wire::Dhcpv6Status::success);
  c.ia_na = ia(*Ipv6Addr::parse("2001:db8::5"));
  r = exchange(c);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->msg.status, wire::Dhcpv6Status::not_on_link);
  // Nothing to confirm: no reply (RFC 8415 §18.3.3).
  c.ia_na = ia();
  feed(frame(c));
  EXPECT_EQ(counters.get(Counter::dhcp6_ignored), 1u);
}

TEST_F(Dhcp6Test, ReleaseAndDeclineGetSuccess) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  for (Type t : {Type::release, Type::decline}) {
    wire::Dhcpv6Repr m = msg(t);
    m.server_id = test::span(kServerDuid);
    m.ia_na = ia(cfg.guest6);
    auto r = exchange(m);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->msg.type, Type::reply);
    EXPECT_EQ(r->msg.status, wire::Dhcpv6Status::success);
  }
}

TEST_F(Dhcp6Test, OtherServersMessagesAreIgnored) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  const Buf other = test::to_buf(std::as_bytes(std::span<const uint8_t>(
      std::initializer_list<uint8_t>{0x00, 0x03, 0x00, 0x01, 0x02, 0, 0, 0, 0, 9})));
  wire::Dhcpv6Repr q = msg(Type::request);
  q.server_id = test::span(other);
  q.ia_na = ia();
  feed(frame(q));
  q.server_id = {};  // Request without a server id is not for us either
  feed(frame(q));
  wire::Dhcpv6Repr i = msg(Type::information_request);
  i.server_id = test::span(other);
  feed(frame(i));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::dhcp6_ignored), 3u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(Dhcp6Test, MalformedIsDropped) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  // Options running past the end.
  const uint8_t bad[] = {0x0b, 0, 0, 1, 0x00, 0x01, 0x00, 0x10, 0xaa};
  feed(g.udp6(wire::kDhcpv6AllServers, 546, 547, std::as_bytes(std::span(bad)), g.guest_ll()));
  expect_only_drop(DropReason::dhcp_malformed);
  // Solicit without a client id; Solicit naming a server; a server's message type.
  counters = Counters{};
  wire::Dhcpv6Repr s = msg(Type::solicit);
  s.client_id = {};
  feed(frame(s));
  s = msg(Type::solicit);
  s.server_id = test::span(kServerDuid);
  feed(frame(s));
  feed(frame(msg(Type::reply)));
  EXPECT_EQ(counters.dropped(DropReason::dhcp_malformed), 3u);
  EXPECT_EQ(counters.total_drops(), 3u);
  EXPECT_TRUE(sink.frames.empty());
}

TEST_F(Dhcp6Test, UnspecifiedSourceIsBadSrc) {
  feed(frame(msg(Type::information_request), Ipv6Addr{}));
  expect_only_drop(DropReason::bad_src);
}

TEST_F(Dhcp6Test, ProcessingIsRateLimited) {
  for (int i = 0; i < 60; ++i) feed(frame(msg(Type::information_request)), t0);
  EXPECT_EQ(sink.frames.size(), 50u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 10u);
}

TEST_F(Dhcp6Test, OtherMulticastUdpStaysIgnored) {
  feed(g.udp6(*Ipv6Addr::parse("ff02::fb"), 5353, 5353, {}, g.guest_ll()));   // mDNS
  feed(g.udp6(wire::kDhcpv6AllServers, 546, 548, {}, g.guest_ll()));         // not port 547
  EXPECT_EQ(counters.get(Counter::ignored_multicast), 2u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

}  // namespace
}  // namespace moat::stack
