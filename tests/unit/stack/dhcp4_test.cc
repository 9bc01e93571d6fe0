// DHCPv4 server (R-NET-7).
#include "stack_fixture.h"

namespace moat::stack {
namespace {

using test::Buf;
using Type = wire::DhcpMessageType;

class DhcpTest : public StackTest {
 protected:
  void SetUp() override {
    cfg.seed = 42;
    cfg.hostname = "sandbox";
    cfg.search_domains = {"corp.example", "example.org"};
    make();
  }
};

TEST_F(DhcpTest, DiscoverGetsOfferWithAllOptions) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::discover);
  const uint8_t prl[] = {1, 3, 6, 15, 26, 28, 119, 121};
  d.parameter_request_list = std::as_bytes(std::span(prl));
  feed(g.dhcp(d));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  // Broadcast: the client has no address yet (R-NET-7).
  EXPECT_EQ(r->outer.eth.dst, MacAddr::broadcast());
  EXPECT_EQ(r->outer.ip.src, cfg.gateway4);
  EXPECT_EQ(r->outer.ip.dst, Ipv4Addr::broadcast());
  EXPECT_EQ(r->udp.src_port, 67);
  EXPECT_EQ(r->udp.dst_port, 68);
  const wire::Dhcpv4Repr& o = r->dhcp;
  EXPECT_EQ(o.op, 2);
  EXPECT_EQ(o.xid, d.xid);
  EXPECT_EQ(o.message_type, Type::offer);
  EXPECT_EQ(o.yiaddr, g.guest4);
  EXPECT_EQ(o.chaddr, g.guest_mac);
  EXPECT_EQ(o.server_id, cfg.gateway4);
  EXPECT_EQ(o.subnet_mask, Ipv4Addr::from_octets(255, 255, 255, 252));
  EXPECT_EQ(o.router, cfg.gateway4);
  EXPECT_EQ(o.broadcast_addr, Ipv4Addr::from_octets(100, 96, 0, 3));
  EXPECT_EQ(o.interface_mtu, 65520);
  EXPECT_EQ(o.lease_time, 86400u);
  EXPECT_EQ(o.renewal_time, 43200u);
  EXPECT_EQ(o.rebinding_time, 75600u);
  EXPECT_EQ(o.hostname, "sandbox");
  EXPECT_EQ(o.domain_name, "corp.example");
  EXPECT_EQ(o.classless_default_route, cfg.gateway4);
  // Byte-exact against an independently built reply (covers options 6 and 119, which
  // parse does not surface).
  wire::Dhcpv4Repr e;
  e.op = 2;
  e.xid = d.xid;
  e.yiaddr = g.guest4;
  e.chaddr = g.guest_mac;
  e.message_type = Type::offer;
  e.server_id = cfg.gateway4;
  e.subnet_mask = Ipv4Addr::from_octets(255, 255, 255, 252);
  e.router = cfg.gateway4;
  const Ipv4Addr dns[] = {cfg.dns4};
  e.dns_servers = dns;
  e.interface_mtu = 65520;
  e.broadcast_addr = Ipv4Addr::from_octets(100, 96, 0, 3);
  e.lease_time = 86400;
  e.renewal_time = 43200;
  e.rebinding_time = 75600;
  e.hostname = "sandbox";
  e.domain_name = "corp.example";
  e.search_domains = cfg.search_domains;
  e.classless_default_route = cfg.gateway4;
  Buf expected(e.len());
  ASSERT_TRUE(e.emit(MutBytes(expected)));
  EXPECT_TRUE(test::bytes_equal(r->outer.l4.subspan(8), test::span(expected)));
  EXPECT_EQ(counters.get(Counter::dhcp_offers), 1u);
}

TEST_F(DhcpTest, ClasslessRouteOnlyWhenRequested) {
  feed(g.dhcp(g.dhcp_msg(Type::discover)));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->dhcp.classless_default_route);
}

TEST_F(DhcpTest, RequestGetsAck) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::request);
  d.requested_ip = g.guest4;
  d.server_id = cfg.gateway4;
  feed(g.dhcp(d));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dhcp.message_type, Type::ack);
  EXPECT_EQ(r->dhcp.yiaddr, g.guest4);
  EXPECT_EQ(r->dhcp.lease_time, 86400u);
  EXPECT_EQ(counters.get(Counter::dhcp_acks), 1u);
}

TEST_F(DhcpTest, RenewalIsUnicastToCiaddr) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::request);
  d.ciaddr = g.guest4;
  feed(g.dhcp(d, g.guest4, cfg.gateway4));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dhcp.message_type, Type::ack);
  EXPECT_EQ(r->outer.ip.dst, g.guest4);
  EXPECT_EQ(r->outer.eth.dst, g.guest_mac);
}

TEST_F(DhcpTest, BroadcastFlagForcesBroadcast) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::request);
  d.ciaddr = g.guest4;
  d.broadcast = true;
  feed(g.dhcp(d, g.guest4));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.dst, Ipv4Addr::broadcast());
  EXPECT_TRUE(r->dhcp.broadcast);
}

TEST_F(DhcpTest, RequestForWrongAddressGetsNak) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::request);
  d.requested_ip = Ipv4Addr::from_octets(192, 168, 1, 50);
  feed(g.dhcp(d));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dhcp.message_type, Type::nak);
  EXPECT_EQ(r->dhcp.yiaddr, Ipv4Addr{});
  EXPECT_EQ(r->outer.ip.dst, Ipv4Addr::broadcast());
  EXPECT_FALSE(r->dhcp.lease_time);
  EXPECT_EQ(counters.get(Counter::dhcp_naks), 1u);
}

TEST_F(DhcpTest, RequestWithForeignServerIdGetsNak) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::request);
  d.requested_ip = g.guest4;
  d.server_id = Ipv4Addr::from_octets(10, 0, 0, 1);
  feed(g.dhcp(d));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dhcp.message_type, Type::nak);
}

TEST_F(DhcpTest, InformGetsAckWithoutAddress) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::inform);
  d.ciaddr = g.guest4;
  feed(g.dhcp(d, g.guest4));
  auto r = test::as_dhcp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dhcp.message_type, Type::ack);
  EXPECT_EQ(r->dhcp.yiaddr, Ipv4Addr{});
  EXPECT_FALSE(r->dhcp.lease_time);
  EXPECT_EQ(r->dhcp.router, cfg.gateway4);
  EXPECT_EQ(r->outer.ip.dst, g.guest4);
}

TEST_F(DhcpTest, ReleaseAndDeclineChangeNothing) {
  feed(g.dhcp(g.dhcp_msg(Type::release), g.guest4));
  feed(g.dhcp(g.dhcp_msg(Type::decline)));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::dhcp_releases), 1u);
  EXPECT_EQ(counters.total_drops(), 0u);
  feed(g.dhcp(g.dhcp_msg(Type::discover)));
  EXPECT_EQ(sink.frames.size(), 1u);
}

TEST_F(DhcpTest, ChaddrBecomesGuestMac) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::discover);
  d.chaddr = MacAddr{{0x02, 0x12, 0x34, 0x56, 0x78, 0x9a}};
  feed(g.dhcp(d));
  EXPECT_EQ(iface->guest_mac(), d.chaddr);  // nothing learned yet: a booting VM's NIC
}

TEST_F(DhcpTest, OnceLearnedOnlyAnAcknowledgedRequestMovesTheMac) {
  // The guest's MAC is known (a frame from its address); a flood of DISCOVERs and INFORMs
  // from random chaddrs and Ethernet sources must not move it (the guest's traffic would
  // follow each one), while a REQUEST that is ACKed makes its chaddr the guest's.
  feed(g.udp4(g.guest4, g.gateway4, 5000, 9, {}));
  const MacAddr real = iface->guest_mac();
  ASSERT_EQ(real, g.guest_mac);
  for (uint8_t i = 1; i <= 3; ++i) {
    auto forged = g;
    forged.guest_mac = MacAddr{{0x02, 0x66, 0, 0, 0, i}};
    wire::Dhcpv4Repr d = forged.dhcp_msg(i == 3 ? Type::inform : Type::discover);
    feed(forged.dhcp(d));
    EXPECT_EQ(iface->guest_mac(), real);
  }
  auto renamed = g;
  renamed.guest_mac = MacAddr{{0x02, 0x77, 0, 0, 0, 1}};
  wire::Dhcpv4Repr r = renamed.dhcp_msg(Type::request);
  r.requested_ip = g.guest4;
  feed(renamed.dhcp(r));
  EXPECT_EQ(iface->guest_mac(), renamed.guest_mac);
}

TEST_F(DhcpTest, MalformedDhcpIsDropped) {
  Buf payload(100);  // shorter than the 240-byte BOOTP header
  feed(g.udp4(Ipv4Addr{}, Ipv4Addr::broadcast(), 68, 67, test::span(payload), MacAddr::broadcast()));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::dhcp_malformed);
}

TEST_F(DhcpTest, ServerMessagesFromGuestAreMalformed) {
  wire::Dhcpv4Repr d = g.dhcp_msg(Type::offer);
  d.op = 2;
  feed(g.dhcp(d));
  expect_only_drop(DropReason::dhcp_malformed);
}

TEST_F(DhcpTest, ProcessingIsRateLimited) {
  for (int i = 0; i < 60; ++i) feed(g.dhcp(g.dhcp_msg(Type::discover)), t0);
  EXPECT_EQ(sink.frames.size(), 50u);
  EXPECT_EQ(counters.get(Counter::dhcp_rate_limited), 10u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 10u);
}

TEST_F(DhcpTest, DisabledDhcpMeansUnspecifiedSourceIsSpoofed) {
  cfg.dhcp4 = false;
  make();
  feed(g.dhcp(g.dhcp_msg(Type::discover)));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_src);
}

TEST_F(DhcpTest, InactiveIpv4ServesNoDhcp) {
  cfg.ipv4_active = false;
  make();
  feed(g.dhcp(g.dhcp_msg(Type::discover)));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::inactive_family);
}

// Defence in depth behind config/'s hostname check: a value that reaches the stack
// anyway (the C ABI) never goes out over 255 bytes or with control characters.
TEST_F(DhcpTest, HostnameThatCannotBeSentIsLeftOut) {
  for (const std::string& bad : {std::string(300, 'a'), std::string("box\nevil"), std::string("a\0b", 3)}) {
    cfg.hostname = bad;
    make();
    sink.frames.clear();
    feed(g.dhcp(g.dhcp_msg(Type::discover)));
    ASSERT_EQ(sink.frames.size(), 1u);
    auto r = test::as_dhcp(out(0));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->dhcp.message_type, Type::offer);
    EXPECT_TRUE(r->dhcp.hostname.empty()) << r->dhcp.hostname.size();
    EXPECT_EQ(r->dhcp.domain_name, "corp.example");  // the rest of the offer is intact
  }
}

}  // namespace
}  // namespace moat::stack
