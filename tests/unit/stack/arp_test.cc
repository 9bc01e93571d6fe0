// ARP responder and Ethernet demux (R-NET-1, R-NET-2).
#include "stack_fixture.h"

namespace moat::stack {
namespace {

using test::Buf;

TEST_F(StackTest, ArpRequestForGatewayGetsExactReply) {
  feed(g.arp_request(cfg.gateway4));
  ASSERT_EQ(sink.frames.size(), 1u);
  // Byte-exact: Ethernet to the requester, ARP reply gateway -> guest.
  Buf arp(wire::ArpRepr::kLen);
  wire::ArpRepr{wire::ArpOp::reply, cfg.gateway_mac, cfg.gateway4, g.guest_mac, g.guest4}.emit(MutBytes(arp));
  Buf expected = test::eth_frame(g.guest_mac, cfg.gateway_mac, wire::kEtherTypeArp, test::span(arp));
  EXPECT_EQ(sink.frames[0], expected);
  EXPECT_EQ(counters.get(Counter::arp_replies), 1u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, ArpRequestForDnsAddressIsAnswered) {
  cfg.prefix4 = 24;
  cfg.dns4 = Ipv4Addr::from_octets(100, 96, 0, 53);
  make();
  feed(g.arp_request(cfg.dns4));
  auto a = test::as_arp(out(0));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->arp.op, wire::ArpOp::reply);
  EXPECT_EQ(a->arp.sender_ip, cfg.dns4);
  EXPECT_EQ(a->arp.sender_mac, cfg.gateway_mac);
}

TEST_F(StackTest, ArpRequestForOtherAddressIsNotAnswered) {
  feed(g.arp_request(Ipv4Addr::from_octets(100, 96, 0, 3)));
  feed(g.arp_request(Ipv4Addr::from_octets(8, 8, 8, 8)));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::ignored_neighbor), 2u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, GratuitousArpUpdatesGuestMac) {
  MacAddr new_mac{{0x02, 0, 0, 0, 0, 0x99}};
  feed(g.arp_gratuitous(new_mac));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(iface->guest_mac(), new_mac);
  // Later unicast to the guest uses the learned MAC.
  test::GuestFrames g2 = g;
  g2.guest_mac = new_mac;
  feed(g2.icmp4_echo(cfg.gateway4, 1, 1, {}));
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, new_mac);
}

TEST_F(StackTest, ArpProbeUpdatesGuestMac) {
  MacAddr new_mac{{0x02, 0, 0, 0, 0, 0x77}};
  feed(g.arp(wire::ArpRepr{wire::ArpOp::request, new_mac, Ipv4Addr{}, MacAddr{}, g.guest4}));
  EXPECT_EQ(iface->guest_mac(), new_mac);
  EXPECT_TRUE(sink.frames.empty());
}

TEST_F(StackTest, ArpFromForeignSenderIsBadSrc) {
  feed(g.arp_request(cfg.gateway4, Ipv4Addr::from_octets(10, 0, 0, 9)));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_src);
}

TEST_F(StackTest, MalformedArpIsDropped) {
  Buf frame = g.arp_request(cfg.gateway4);
  frame.resize(14 + 20);  // truncated ARP
  feed(frame);
  expect_only_drop(DropReason::bad_arp);
}

TEST_F(StackTest, ArpRepliesAreRateLimited) {
  for (int i = 0; i < 150; ++i) feed(g.arp_request(cfg.gateway4), t0);
  EXPECT_EQ(sink.frames.size(), 100u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 50u);
  EXPECT_EQ(counters.get(Counter::arp_rate_limited), 50u);
  // 100/s refill.
  feed(g.arp_request(cfg.gateway4), t0 + std::chrono::milliseconds(20));
  EXPECT_EQ(sink.frames.size(), 102u - 1u);  // 20 ms = 2 tokens, one used
}

// ---- Ethernet demux (R-NET-1) --------------------------------------------------------------

TEST_F(StackTest, RuntFrameIsDropped) {
  feed(Buf(10));
  expect_only_drop(DropReason::runt);
}

TEST_F(StackTest, OversizeFrameIsDropped) {
  feed(Buf(Interface::kMaxFrame + 1));
  expect_only_drop(DropReason::oversize);
}

TEST_F(StackTest, VlanTaggedFrameIsDropped) {
  Buf inner = g.arp_request(cfg.gateway4);
  Buf vlan = test::eth_frame(cfg.gateway_mac, g.guest_mac, wire::kEtherTypeVlan,
                             test::span(inner).subspan(12));  // TCI-ish + original type + payload
  feed(vlan);
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::ethertype);
}

TEST_F(StackTest, UnknownEthertypeIsDropped) {
  feed(test::eth_frame(cfg.gateway_mac, g.guest_mac, 0x88cc, test::span(Buf(40))));
  expect_only_drop(DropReason::ethertype);
}

TEST_F(StackTest, UnicastToOtherMacIsNotForUs) {
  Buf f = g.icmp4_echo(cfg.gateway4, 1, 1, {});
  Buf other = test::eth_frame(MacAddr{{0x02, 1, 2, 3, 4, 5}}, g.guest_mac, wire::kEtherTypeIpv4,
                              test::span(f).subspan(14));
  feed(other);
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::not_for_us);
}

TEST_F(StackTest, LinkCountersBelongToTheTransport) {
  // Each transport counts link.* for what crossed its link; counting here too doubled them.
  Buf f = g.arp_request(cfg.gateway4);
  feed(f);
  EXPECT_EQ(counters.get(Counter::link_from_guest_frames), 0u);
  EXPECT_EQ(counters.get(Counter::link_to_guest_frames), 0u);
}

}  // namespace
}  // namespace moat::stack
