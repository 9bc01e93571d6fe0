// IPv6 validation, source rules, gateway echo and hand-off (R-NET-4, R-ADDR-3/4, R-ICMP-1).
#include "stack_fixture.h"

namespace moat::stack {
namespace {

using test::Buf;
const Ipv6Addr kRemote6 = *Ipv6Addr::parse("2001:db8::1");

TEST_F(StackTest, PingGatewayV6IsAnswered) {
  Buf data = test::text("ping6-data");
  feed(g.icmp6_echo(cfg.gateway6, 0x77, 3, test::span(data)));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, g.guest_mac);
  EXPECT_EQ(r->outer.ip.src, cfg.gateway6);
  EXPECT_EQ(r->outer.ip.dst, g.guest6);
  EXPECT_EQ(r->outer.ip.hop_limit, 64);
  EXPECT_EQ(r->icmp.type, wire::kIcmpv6EchoReply);
  EXPECT_EQ(r->icmp.ident, 0x77);
  EXPECT_EQ(r->icmp.seq, 3);
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(data)));
}

TEST_F(StackTest, PingGatewayLinkLocalFromLinkLocalIsAnswered) {
  feed(g.icmp6_echo(g.gateway_ll(), 1, 1, {}, g.guest_ll()));
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.src, g.gateway_ll());
  EXPECT_EQ(r->outer.ip.dst, g.guest_ll());
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, PingDnsV6IsAnswered) {
  cfg.dns6 = *Ipv6Addr::parse("fd42:6d73:62::53");
  make();
  feed(g.icmp6_echo(cfg.dns6, 1, 1, {}));
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.src, cfg.dns6);
}

TEST_F(StackTest, PingRemoteV6GoesToHandler) {
  feed(g.icmp6_echo(kRemote6, 1, 1, {}));
  expect_only_drop(DropReason::no_handler);
  iface->set_packet_handler(&handler);
  feed(g.icmp6_echo(kRemote6, 1, 1, {}));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(handler.v6, 1);
  EXPECT_EQ(handler.last6.dst, kRemote6);
}

TEST_F(StackTest, SlaacAddressesInTheGuestPrefixAreAccepted) {
  iface->set_packet_handler(&handler);
  feed(g.udp6(kRemote6, 1000, 53, {}, *Ipv6Addr::parse("fd42:6d73:62::abcd:1234")));
  EXPECT_EQ(handler.v6, 1);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, SpoofedV6SourcesAreBadSrc) {
  iface->set_packet_handler(&handler);
  feed(g.udp6(kRemote6, 1, 2, {}, *Ipv6Addr::parse("2001:db8::99")));  // outside the /64
  feed(g.udp6(kRemote6, 1, 2, {}, cfg.gateway6));                     // claims the gateway
  feed(g.udp6(kRemote6, 1, 2, {}, g.guest_ll()));                     // link-local beyond the link
  feed(g.udp6(kRemote6, 1, 2, {}, Ipv6Addr{}));                       // :: is for DAD only
  EXPECT_EQ(counters.dropped(DropReason::bad_src), 4u);
  EXPECT_EQ(counters.total_drops(), 4u);
  EXPECT_EQ(handler.v6, 0);
}

TEST_F(StackTest, MldFromLinkLocalIsIgnoredMulticast) {
  feed(g.ipv6(g.ip6_header(g.guest_ll(), *Ipv6Addr::parse("ff02::16"), 0x3a, 1), test::span(Buf(8))));
  expect_only_ignored(Counter::ignored_multicast);
}

TEST_F(StackTest, MartianV6DestinationsAreDropped) {
  feed(g.udp6(*Ipv6Addr::parse("::1"), 1, 2, {}));
  expect_only_drop(DropReason::martian);
  feed(g.udp6(g.guest6, 1, 2, {}));
  feed(g.udp6(*Ipv6Addr::parse("fe80::1234"), 1, 2, {}, g.guest_ll()));  // link-local, not ours
  EXPECT_EQ(counters.dropped(DropReason::martian), 3u);
  EXPECT_EQ(counters.total_drops(), 3u);
}

TEST_F(StackTest, ZeroUdpChecksumV6IsDropped) {
  iface->set_packet_handler(&handler);
  Buf f = g.udp6(kRemote6, 1000, 53, test::span(test::text("x")));
  f[14 + 40 + 6] = std::byte{0};
  f[14 + 40 + 7] = std::byte{0};
  feed(f);
  EXPECT_EQ(handler.v6, 0);
  expect_only_drop(DropReason::bad_udp);
}

TEST_F(StackTest, RoutingHeaderWithSegmentsLeftIsDropped) {
  iface->set_packet_handler(&handler);
  Buf udp = test::udp6_datagram(1, 2, {}, g.guest6, kRemote6);
  // Routing header (RFC 8200 §4.4): next = UDP, hdr ext len 0, type 4, segments left 1.
  Buf ext = {std::byte{17}, std::byte{0}, std::byte{4}, std::byte{1},
             std::byte{0},  std::byte{0}, std::byte{0}, std::byte{0}};
  ext.insert(ext.end(), udp.begin(), udp.end());
  feed(g.ipv6(g.ip6_header(g.guest6, kRemote6, wire::kNextRouting), test::span(ext)));
  EXPECT_EQ(handler.v6, 0);
  expect_only_drop(DropReason::ext_header);
}

TEST_F(StackTest, UnknownNextHeaderIsDropped) {
  feed(g.ipv6(g.ip6_header(g.guest6, kRemote6, 51), test::span(Buf(16))));  // AH
  expect_only_drop(DropReason::ext_header);
}

TEST_F(StackTest, UnsupportedUpperLayerV6IsDropped) {
  feed(g.ipv6(g.ip6_header(g.guest6, kRemote6, 132), test::span(Buf(16))));  // SCTP
  expect_only_drop(DropReason::unsupported_proto);
}

TEST_F(StackTest, V6UdpFragmentsAreReassembled) {
  iface->set_packet_handler(&handler);
  Buf udp = test::udp6_datagram(1, 2, test::span(Buf(100)), g.guest6, kRemote6);
  auto fragment = [&](uint16_t off, bool more, Bytes part) {
    Buf f(wire::Ipv6FragmentHeader::kLen);
    wire::Ipv6FragmentHeader{wire::kProtoUdp, off, more, 99}.emit(MutBytes(f));
    f.insert(f.end(), part.begin(), part.end());
    feed(g.ipv6(g.ip6_header(g.guest6, kRemote6, wire::kNextFragment), test::span(f)));
  };
  fragment(0, true, test::span(udp).first(48));
  EXPECT_EQ(handler.v6, 0);
  fragment(48, false, test::span(udp).subspan(48));
  ASSERT_EQ(handler.v6, 1);
  EXPECT_EQ(handler.last_l4, udp);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, AtomicFragmentIsAWholePacket) {
  iface->set_packet_handler(&handler);
  Buf frag(wire::Ipv6FragmentHeader::kLen);
  wire::Ipv6FragmentHeader{wire::kProtoUdp, 0, false, 99}.emit(MutBytes(frag));
  Buf udp = test::udp6_datagram(1, 2, test::span(Buf(16)), g.guest6, kRemote6);
  frag.insert(frag.end(), udp.begin(), udp.end());
  feed(g.ipv6(g.ip6_header(g.guest6, kRemote6, wire::kNextFragment), test::span(frag)));
  EXPECT_EQ(handler.v6, 1);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, TruncatedIpv6IsBadIp) {
  Buf f = g.udp6(kRemote6, 1, 2, {});
  f.resize(14 + 30);
  feed(f);
  expect_only_drop(DropReason::bad_ip);
}

TEST_F(StackTest, InactiveIpv6AnswersUnreachable) {
  cfg.ipv6_active = false;
  make();
  iface->set_packet_handler(&handler);
  Buf f = g.udp6(kRemote6, 4000, 443, test::span(test::text("quic")));
  feed(f);
  EXPECT_EQ(handler.v6, 0);
  expect_only_drop(DropReason::inactive_family);
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.src, g.gateway_ll());
  EXPECT_EQ(r->outer.ip.dst, g.guest6);
  EXPECT_EQ(r->icmp.type, wire::kIcmpv6DestUnreachable);
  EXPECT_EQ(r->icmp.code, 0);
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(f).subspan(14)));
  // No RA while IPv6 is inactive.
  iface->start(t0);
  EXPECT_EQ(sink.frames.size(), 1u);
  EXPECT_FALSE(iface->next_deadline());
}

}  // namespace
}  // namespace moat::stack
