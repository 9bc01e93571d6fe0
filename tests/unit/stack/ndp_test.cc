// Neighbour discovery and router advertisements (R-NET-5, R-NET-6).
#include "stack_fixture.h"

namespace moat::stack {
namespace {

using test::Buf;
using std::chrono::seconds;

TEST_F(StackTest, NsForGatewayGetsSolicitedNa) {
  feed(g.ns(cfg.gateway6));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, g.guest_mac);
  EXPECT_EQ(r->outer.ip.src, cfg.gateway6);
  EXPECT_EQ(r->outer.ip.dst, g.guest_ll());
  EXPECT_EQ(r->outer.ip.hop_limit, 255);
  EXPECT_EQ(r->ndp.type, wire::kNdpNeighborAdvert);
  EXPECT_EQ(r->ndp.target, cfg.gateway6);
  EXPECT_TRUE(r->ndp.router);
  EXPECT_TRUE(r->ndp.solicited);
  EXPECT_TRUE(r->ndp.override_);
  EXPECT_EQ(r->ndp.target_ll, cfg.gateway_mac);
  EXPECT_EQ(counters.get(Counter::ndp_replies), 1u);
}

TEST_F(StackTest, NsForGatewayLinkLocalIsAnswered) {
  feed(g.ns(g.gateway_ll()));
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ndp.target, g.gateway_ll());
  EXPECT_EQ(r->outer.ip.src, g.gateway_ll());
}

TEST_F(StackTest, NsFromGlobalSourceForDnsIsAnswered) {
  cfg.dns6 = *Ipv6Addr::parse("fd42:6d73:62::53");
  make();
  feed(g.ns(cfg.dns6, g.guest6));
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ndp.target, cfg.dns6);
  EXPECT_EQ(r->outer.ip.dst, g.guest6);
}

TEST_F(StackTest, DadProbeForGatewayIsAnsweredToAllNodes) {
  feed(g.ns(cfg.gateway6, Ipv6Addr{}));
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.dst, Ipv6Addr::all_nodes());
  EXPECT_EQ(r->outer.eth.dst, (MacAddr{{0x33, 0x33, 0, 0, 0, 1}}));
  EXPECT_FALSE(r->ndp.solicited);
  EXPECT_TRUE(r->ndp.override_);
}

TEST_F(StackTest, DadProbeForGuestAddressIsIgnored) {
  feed(g.ns(g.guest6, Ipv6Addr{}));
  feed(g.ns(g.guest_ll(), Ipv6Addr{}));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(counters.get(Counter::ignored_neighbor), 2u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(StackTest, NdpWithWrongHopLimitIsDropped) {
  feed(g.ns(cfg.gateway6, std::nullopt, 64));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_drop(DropReason::bad_ndp);
}

// Issue 14: NDP from a link-local source proves no guest identity. Once the guest MAC is
// learned, forged NS/RS from other MACs are answered (to that MAC) but do not move it: an
// IPv4 reply still goes to the real guest MAC.
TEST_F(StackTest, ForgedNdpFromAnotherMacDoesNotMoveTheGuestMac) {
  feed(g.icmp4_echo(cfg.gateway4, 1, 1, {}));  // the real guest: MAC learned
  ASSERT_EQ(sink.frames.size(), 1u);
  test::GuestFrames forger = g;
  forger.guest_mac = MacAddr{{0x02, 0xee, 0, 0, 0, 9}};
  const Ipv6Addr forged_ll = forger.guest_mac.link_local();
  feed(forger.ns(cfg.gateway6, forged_ll));
  feed(forger.rs(forged_ll), t0 + seconds(10));
  EXPECT_EQ(iface->guest_mac(), g.guest_mac);
  EXPECT_EQ(counters.get(Counter::ndp_foreign_mac), 2u);
  // The NS is still answered, to the asker's MAC.
  auto na = test::as_ndp(out(1));
  ASSERT_TRUE(na);
  EXPECT_EQ(na->outer.eth.dst, forger.guest_mac);
  sink.frames.clear();
  feed(g.icmp4_echo(cfg.gateway4, 1, 2, {}), t0 + seconds(11));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_ipv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->eth.dst, g.guest_mac);
}

// A source link-layer option naming another MAC than the frame's sender is forged.
TEST_F(StackTest, NsWithMismatchedSourceLinkLayerOptionIsDropped) {
  test::GuestFrames forger = g;
  forger.guest_mac = MacAddr{{0x02, 0xee, 0, 0, 0, 9}};
  wire::NdpRepr m;
  m.type = wire::kNdpNeighborSolicit;
  m.target = cfg.gateway6;
  m.source_ll = forger.guest_mac;  // the frame itself comes from g.guest_mac
  feed(g.ndp(m, g.guest_ll(), cfg.gateway6.solicited_node()));
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(iface->guest_mac(), cfg.guest_mac);
  expect_only_drop(DropReason::bad_ndp);
}

// A guest whose NIC really changed moves the MAC with its first frame from a guest address.
TEST_F(StackTest, GuestMacMovesWithAFrameFromTheGuestAddress) {
  feed(g.icmp4_echo(cfg.gateway4, 1, 1, {}));
  test::GuestFrames moved = g;
  moved.guest_mac = MacAddr{{0x02, 0xaa, 0, 0, 0, 7}};
  feed(moved.icmp4_echo(cfg.gateway4, 1, 2, {}));
  EXPECT_EQ(iface->guest_mac(), moved.guest_mac);
  test::GuestFrames moved2 = g;
  moved2.guest_mac = MacAddr{{0x02, 0xaa, 0, 0, 0, 8}};
  feed(moved2.ns(cfg.gateway6, g.guest6));  // NDP from a guest-prefix source moves it too
  EXPECT_EQ(iface->guest_mac(), moved2.guest_mac);
  EXPECT_EQ(counters.get(Counter::ndp_foreign_mac), 0u);
}

TEST_F(StackTest, NsLearnsGuestMacFromSourceLinkLayerOption) {
  MacAddr new_mac{{0x02, 0xaa, 0, 0, 0, 1}};
  test::GuestFrames g2 = g;
  g2.guest_mac = new_mac;
  feed(g2.ns(cfg.gateway6, g.guest_ll()));
  EXPECT_EQ(iface->guest_mac(), new_mac);
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, new_mac);
}

TEST_F(StackTest, NdpRepliesAreRateLimited) {
  for (int i = 0; i < 120; ++i) feed(g.ns(cfg.gateway6), t0);
  EXPECT_EQ(sink.frames.size(), 100u);
  EXPECT_EQ(counters.get(Counter::ndp_rate_limited), 20u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 20u);
}

/// The RA R-NET-6 prescribes, emitted independently of the stack for a byte-exact check.
Buf expected_ra_l4(const LinkConfig& cfg) {
  wire::NdpRepr ra;
  ra.type = wire::kNdpRouterAdvert;
  ra.cur_hop_limit = 64;
  ra.managed = cfg.dhcpv6 == Dhcpv6Mode::stateful;
  ra.other = cfg.dhcpv6 != Dhcpv6Mode::off;
  ra.router_lifetime = 1800;
  ra.source_ll = cfg.gateway_mac;
  ra.mtu = cfg.mtu;
  ra.prefix = wire::NdpPrefixInfo{*Ipv6Addr::parse("fd42:6d73:62::"), 64, true, true, 86400, 14400};
  ra.rdnss = cfg.dns6;
  ra.rdnss_lifetime = 1800;
  ra.dnssl = std::span<const std::string>(cfg.search_domains);
  return test::ndp_msg(ra, cfg.gateway_mac.link_local(), Ipv6Addr::all_nodes());
}

TEST_F(StackTest, RouterSolicitationGetsFullRa) {
  cfg.search_domains = {"corp.example", "example.org"};
  make();
  feed(g.rs());
  ASSERT_EQ(sink.frames.size(), 1u);
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.eth.dst, (MacAddr{{0x33, 0x33, 0, 0, 0, 1}}));
  EXPECT_EQ(r->outer.ip.src, g.gateway_ll());
  EXPECT_EQ(r->outer.ip.dst, Ipv6Addr::all_nodes());
  EXPECT_EQ(r->outer.ip.hop_limit, 255);
  EXPECT_EQ(r->ndp.type, wire::kNdpRouterAdvert);
  EXPECT_EQ(r->ndp.cur_hop_limit, 64);
  // Default net.ipv6.dhcpv6 = stateless: O set, M clear (R-NET-6).
  EXPECT_FALSE(r->ndp.managed);
  EXPECT_TRUE(r->ndp.other);
  EXPECT_EQ(r->ndp.router_lifetime, 1800);
  EXPECT_EQ(r->ndp.source_ll, cfg.gateway_mac);
  EXPECT_EQ(r->ndp.mtu, cfg.mtu);
  ASSERT_TRUE(r->ndp.prefix);
  EXPECT_EQ(r->ndp.prefix->prefix, *Ipv6Addr::parse("fd42:6d73:62::"));
  EXPECT_EQ(r->ndp.prefix->prefix_len, 64);
  EXPECT_TRUE(r->ndp.prefix->on_link);
  EXPECT_TRUE(r->ndp.prefix->autonomous);
  EXPECT_EQ(r->ndp.prefix->valid_lifetime, 86400u);
  EXPECT_EQ(r->ndp.prefix->preferred_lifetime, 14400u);
  EXPECT_EQ(r->ndp.rdnss, cfg.dns6);
  EXPECT_EQ(r->ndp.rdnss_lifetime, 1800u);
  // Byte-exact, which also covers the DNSSL option parse does not surface.
  EXPECT_TRUE(test::bytes_equal(r->outer.l4, test::span(expected_ra_l4(cfg))));
  EXPECT_EQ(counters.get(Counter::ra_sent), 1u);
}

TEST_F(StackTest, RaFlagsFollowDhcpv6Mode) {
  cfg.dhcpv6 = Dhcpv6Mode::stateful;
  make();
  feed(g.rs());
  auto r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ndp.managed);
  EXPECT_TRUE(r->ndp.other);

  cfg.dhcpv6 = Dhcpv6Mode::off;
  make();
  feed(g.rs());
  r = test::as_ndp(out(0));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ndp.managed);
  EXPECT_FALSE(r->ndp.other);
}

TEST_F(StackTest, SolicitedRasAreLimitedToOnePerThreeSeconds) {
  feed(g.rs(), t0);
  feed(g.rs(), t0 + seconds(1));
  feed(g.rs(Ipv6Addr{}), t0 + std::chrono::milliseconds(2999));
  EXPECT_EQ(sink.frames.size(), 1u);
  EXPECT_EQ(counters.dropped(DropReason::rate_limit), 2u);
  feed(g.rs(), t0 + seconds(3));
  EXPECT_EQ(sink.frames.size(), 2u);
}

TEST_F(StackTest, RsIgnoredWhenRaDisabled) {
  cfg.ra = false;
  make();
  feed(g.rs());
  EXPECT_TRUE(sink.frames.empty());
  expect_only_ignored(Counter::ignored_neighbor);
}

TEST_F(StackTest, StartSendsThreeRasFourSecondsApartThenJittered) {
  EXPECT_FALSE(iface->next_deadline());
  iface->start(t0);
  EXPECT_EQ(sink.frames.size(), 1u);
  ASSERT_TRUE(iface->next_deadline());
  EXPECT_EQ(*iface->next_deadline(), t0 + seconds(4));
  iface->on_timer(t0 + seconds(3));  // early: nothing
  EXPECT_EQ(sink.frames.size(), 1u);
  iface->on_timer(t0 + seconds(4));
  EXPECT_EQ(sink.frames.size(), 2u);
  EXPECT_EQ(*iface->next_deadline(), t0 + seconds(8));
  iface->on_timer(t0 + seconds(8));
  EXPECT_EQ(sink.frames.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto r = test::as_ndp(out(i));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->ndp.type, wire::kNdpRouterAdvert);
  }
  // Then every ra_interval ± 10 %.
  Instant prev = t0 + seconds(8);
  for (int i = 0; i < 20; ++i) {
    Instant next = *iface->next_deadline();
    EXPECT_GE(next - prev, seconds(540));
    EXPECT_LE(next - prev, seconds(660));
    iface->on_timer(next);
    prev = next;
  }
  EXPECT_EQ(sink.frames.size(), 23u);
  EXPECT_EQ(counters.get(Counter::ra_sent), 23u);
}

TEST_F(StackTest, RaJitterIsDeterministicForASeed) {
  auto schedule = [&](uint64_t seed) {
    cfg.seed = seed;
    make();
    iface->start(t0);
    iface->on_timer(t0 + seconds(4));
    iface->on_timer(t0 + seconds(8));
    return *iface->next_deadline();
  };
  Instant a = schedule(1), b = schedule(1), c = schedule(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(StackTest, RaFromGuestIsIgnored) {
  wire::NdpRepr ra;
  ra.type = wire::kNdpRouterAdvert;
  ra.router_lifetime = 1800;
  feed(g.ndp(ra, g.guest_ll(), Ipv6Addr::all_nodes()));
  EXPECT_TRUE(sink.frames.empty());
  expect_only_ignored(Counter::ignored_icmp);
}

}  // namespace
}  // namespace moat::stack
