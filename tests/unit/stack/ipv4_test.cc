// IPv4 validation, gateway echo and hand-off (R-NET-3, R-ADDR-3/4, R-ICMP-1/2/4).
#include "stack_fixture.h"
#include "wire/checksum.h"

namespace moat::stack {
namespace {

using test::Buf;
const Ipv4Addr kRemote = Ipv4Addr::from_octets(8, 8, 8, 8);

TEST_F(StackTest, PingGatewayV4IsAnswered) {
  Buf data = test::text("abcdefgh0123");
  feed(g.icmp4_echo(cfg.gateway4, 0x4242, 7, test::span(data)));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, g.guest_mac);
  EXPECT_EQ(r->outer.eth.src, cfg.gateway_mac);
  EXPECT_EQ(r->outer.ip.src, cfg.gateway4);
  EXPECT_EQ(r->outer.ip.dst, g.guest4);
  EXPECT_EQ(r->outer.ip.ttl, 64);
  EXPECT_EQ(r->icmp.type, wire::kIcmpEchoReply);
  EXPECT_EQ(r->icmp.ident, 0x4242);
  EXPECT_EQ(r->icmp.seq, 7);
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(data)));
  EXPECT_EQ(counters.get(Counter::icmp_echo_local), 1u);
}

TEST_F(StackTest, PingDnsV4IsAnswered) {
  cfg.prefix4 = 24;
  cfg.dns4 = Ipv4Addr::from_octets(100, 96, 0, 53);
  make();
  feed(g.icmp4_echo(cfg.dns4, 1, 2, {}));
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.src, cfg.dns4);
}

TEST_F(StackTest, PingGatewayDisabledIsIgnored) {
  cfg.gateway_echo = false;
  make();
  feed(g.icmp4_echo(cfg.gateway4, 1, 2, {}));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_ignored(Counter::ignored_icmp);
}

TEST_F(StackTest, EchoRepliesAreRateLimited) {
  for (int i = 0; i < 1100; ++i) feed(g.icmp4_echo(cfg.gateway4, 1, uint16_t(i), {}), t0);
  EXPECT_EQ(sink.frames.size(), 1000u);
  EXPECT_EQ(counters.get(Counter::icmp_echo_rate_limited), 100u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 100u);
}

TEST_F(StackTest, PingRemoteIsNeverAnsweredLocally) {
  feed(g.icmp4_echo(kRemote, 1, 1, {}));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::no_handler);

  iface->set_packet_handler(&handler);
  feed(g.icmp4_echo(kRemote, 1, 2, {}));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(handler.v4, 1);
  EXPECT_EQ(handler.last4.dst, kRemote);
  EXPECT_EQ(handler.last4.protocol, wire::kProtoIcmp);
}

TEST_F(StackTest, TcpAndUdpGoToTheHandler) {
  iface->set_packet_handler(&handler);
  feed(g.udp4(g.guest4, kRemote, 5000, 53, test::span(test::text("q"))));
  EXPECT_EQ(handler.v4, 1);
  EXPECT_EQ(handler.last_l4.size(), 9u);
  feed(g.tcp4_raw(cfg.gateway4, test::span(Buf(20))));  // gateway TCP: loopback mapping is the flows' job
  EXPECT_EQ(handler.v4, 2);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, OtherIcmpTypesAreIgnored) {
  wire::Icmpv4Repr ts;
  ts.type = 13;  // timestamp request
  Buf l4 = test::icmpv4_msg(ts);
  feed(g.ipv4(g.ip4_header(cfg.gateway4, wire::kProtoIcmp), test::span(l4)));
  wire::Icmpv4Repr err;
  err.type = wire::kIcmpDestUnreachable;
  err.code = 3;
  Buf l4e = test::icmpv4_msg(err);
  iface->set_packet_handler(&handler);
  feed(g.ipv4(g.ip4_header(kRemote, wire::kProtoIcmp), test::span(l4e)));
  EXPECT_EQ(counters.get(Counter::ignored_icmp), 2u);
  EXPECT_EQ(handler.v4, 0);
  EXPECT_TRUE(sink.frames.empty());
}

TEST_F(StackTest, BadIcmpChecksumIsDropped) {
  Buf f = g.icmp4_echo(cfg.gateway4, 1, 1, test::span(test::text("xy")));
  f.back() ^= std::byte{0xff};
  feed(f);
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_icmp);
}

TEST_F(StackTest, BadIpv4ChecksumIsDropped) {
  Buf f = g.icmp4_echo(cfg.gateway4, 1, 1, {});
  f[14 + 8] = std::byte{63};  // TTL changed without fixing the header checksum
  feed(f);
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_ip);
}

TEST_F(StackTest, SourceRoutedPacketIsDropped) {
  // A 24-byte header with an LSRR option (RFC 791: type 131, length 3, pointer 4, EOL).
  Buf l4 = test::icmpv4_msg(wire::Icmpv4Repr{wire::kIcmpEchoRequest, 0, 1, 1, 0, {}});
  Buf p = test::ipv4_packet(g.ip4_header(cfg.gateway4, wire::kProtoIcmp), test::span(l4));
  Buf h(p.begin(), p.begin() + 20);
  h.insert(h.end(), {std::byte{131}, std::byte{3}, std::byte{4}, std::byte{0}});
  h[0] = std::byte{0x46};
  store_be16(h.data() + 2, uint16_t(24 + l4.size()));
  store_be16(h.data() + 10, 0);
  store_be16(h.data() + 10, wire::internet_checksum(test::span(h)));
  h.insert(h.end(), l4.begin(), l4.end());
  feed(test::eth_frame(cfg.gateway_mac, g.guest_mac, wire::kEtherTypeIpv4, test::span(h)));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_ip);
}

TEST_F(StackTest, SpoofedSourceIsBadSrc) {
  iface->set_packet_handler(&handler);
  feed(g.udp4(Ipv4Addr::from_octets(10, 1, 2, 3), kRemote, 1, 2, {}));
  EXPECT_EQ(handler.v4, 0);
  expect_only_drop(DropReason::bad_src);
}

TEST_F(StackTest, UnspecifiedSourceOnlyForDhcp) {
  iface->set_packet_handler(&handler);
  feed(g.udp4(Ipv4Addr{}, kRemote, 68, 1234, {}));
  expect_only_drop(DropReason::bad_src);
}

TEST_F(StackTest, MartianDestinationsAreDropped) {
  iface->set_packet_handler(&handler);
  feed(g.udp4(g.guest4, Ipv4Addr::from_octets(127, 0, 0, 1), 1, 2, {}));
  expect_only_drop(DropReason::martian);
  feed(g.udp4(g.guest4, Ipv4Addr{}, 1, 2, {}));
  feed(g.udp4(g.guest4, g.guest4, 1, 2, {}));
  EXPECT_EQ(counters.dropped(DropReason::martian), 3u);
  EXPECT_EQ(handler.v4, 0);
}

TEST_F(StackTest, UdpFragmentsAreReassembledTcpFragmentsDropped) {
  iface->set_packet_handler(&handler);
  // R-FRAG-1: a UDP datagram in two fragments reaches the handler whole.
  Buf payload(100, std::byte{0x5a});
  Buf udp = test::udp4_datagram(4000, 53, test::span(payload), g.guest4, kRemote);
  wire::Ipv4Repr first = g.ip4_header(kRemote, wire::kProtoUdp);
  first.ident = 77;
  first.more_fragments = true;
  feed(g.ipv4(first, test::span(udp).first(64)));
  EXPECT_EQ(handler.v4, 0);
  wire::Ipv4Repr second = first;
  second.more_fragments = false;
  second.frag_offset = 64;
  feed(g.ipv4(second, test::span(udp).subspan(64)));
  ASSERT_EQ(handler.v4, 1);
  EXPECT_EQ(handler.last_l4, udp);
  EXPECT_EQ(counters.get(Counter::frag_reassembled), 1u);
  // Other protocols' fragments are not reassembled (R-NET-3).
  wire::Ipv4Repr tcp = g.ip4_header(kRemote, wire::kProtoTcp);
  tcp.more_fragments = true;
  feed(g.ipv4(tcp, test::span(Buf(16))));
  expect_only_drop(DropReason::fragment_unsupported);
}

TEST_F(StackTest, MulticastAndBroadcastAreIgnored) {
  iface->set_packet_handler(&handler);
  // mDNS and the subnet broadcast (100.96.0.3 for the default /30).
  feed(g.udp4(g.guest4, Ipv4Addr::from_octets(224, 0, 0, 251), 5353, 5353, {}, MacAddr{{1, 0, 0x5e, 0, 0, 0xfb}}));
  feed(g.udp4(g.guest4, Ipv4Addr::from_octets(100, 96, 0, 3), 9, 9, {}, MacAddr::broadcast()));
  feed(g.udp4(g.guest4, Ipv4Addr::broadcast(), 9, 9, {}, MacAddr::broadcast()));
  EXPECT_EQ(counters.get(Counter::ignored_multicast), 3u);
  EXPECT_EQ(counters.total_drops(), 0u);
  EXPECT_EQ(handler.v4, 0);
}

TEST_F(StackTest, UnsupportedProtocolIsDropped) {
  feed(g.ipv4(g.ip4_header(kRemote, 47), test::span(Buf(8))));  // GRE
  expect_only_drop(DropReason::unsupported_proto);
}

TEST_F(StackTest, TruncatedUdpIsBadUdp) {
  iface->set_packet_handler(&handler);
  feed(g.ipv4(g.ip4_header(kRemote, wire::kProtoUdp), test::span(Buf(5))));
  expect_only_drop(DropReason::bad_udp);
}

// ---- R-ADDR-3: inactive family ---------------------------------------------------------

TEST_F(StackTest, InactiveIpv4AnswersUnreachable) {
  cfg.ipv4_active = false;
  make();
  iface->set_packet_handler(&handler);
  Buf payload = test::text("hello");
  Buf f = g.udp4(g.guest4, kRemote, 4000, 443, test::span(payload));
  feed(f);
  EXPECT_EQ(handler.v4, 0);
  expect_only_drop(DropReason::inactive_family);
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.src, cfg.gateway4);
  EXPECT_EQ(r->outer.ip.dst, g.guest4);
  EXPECT_EQ(r->icmp.type, wire::kIcmpDestUnreachable);
  EXPECT_EQ(r->icmp.code, 0);
  // The quote is the whole (small) offending packet.
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(f).subspan(14)));
  EXPECT_EQ(counters.get(Counter::icmp_errors_sent), 1u);
}

TEST_F(StackTest, InactiveIpv4NeverAnswersErrorsMulticastOrGateway) {
  cfg.ipv4_active = false;
  make();
  wire::Icmpv4Repr err;
  err.type = wire::kIcmpDestUnreachable;
  Buf l4 = test::icmpv4_msg(err);
  feed(g.ipv4(g.ip4_header(kRemote, wire::kProtoIcmp), test::span(l4)));
  feed(g.udp4(g.guest4, Ipv4Addr::from_octets(224, 0, 0, 251), 5353, 5353, {}, MacAddr{{1, 0, 0x5e, 0, 0, 0xfb}}));
  feed(g.icmp4_echo(cfg.gateway4, 1, 1, {}));
  wire::Ipv4Repr frag = g.ip4_header(kRemote, wire::kProtoUdp);
  frag.frag_offset = 8;
  feed(g.ipv4(frag, test::span(Buf(16))));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.dropped(DropReason::inactive_family), 4u);
  EXPECT_EQ(counters.total_drops(), 4u);
}

}  // namespace
}  // namespace moat::stack
