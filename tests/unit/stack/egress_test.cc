// Egress helpers used by the flow layer: send_ipv4/6 and ICMP errors (R-ICMP-3).
#include "stack_fixture.h"
#include "wire/tcp.h"

namespace moat::stack {
namespace {

using test::Buf;
const Ipv4Addr kRemote = Ipv4Addr::from_octets(1, 1, 1, 1);
const Ipv6Addr kRemote6 = *Ipv6Addr::parse("2001:db8::1");

TEST_F(StackTest, SendIpv4BuildsFrameAroundL4) {
  Buf payload = test::text("response");
  bool ok = iface->send_ipv4(kRemote, g.guest4, wire::kProtoUdp, 8 + payload.size(), [&](MutBytes l4) {
    std::memcpy(l4.data() + 8, payload.data(), payload.size());
    wire::UdpRepr u;
    u.src_port = 53;
    u.dst_port = 40000;
    u.emit_v4(l4, kRemote, g.guest4);
  });
  ASSERT_TRUE(ok);
  auto r = test::as_ipv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->eth.dst, g.guest_mac);
  EXPECT_EQ(r->eth.src, cfg.gateway_mac);
  EXPECT_EQ(r->ip.src, kRemote);
  EXPECT_EQ(r->ip.ttl, 64);
  EXPECT_TRUE(r->ip.dont_fragment);
  Bytes got;
  auto u = wire::UdpRepr::parse(r->l4, &got);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->dst_port, 40000);
  EXPECT_TRUE(test::bytes_equal(got, test::span(payload)));
}

// R-TR-1 / R-TR-6: only a TSO super-frame may exceed the MTU, and only so far that each
// segment the guest cuts (IP + TCP header + gso_size) fits it and the IP packet fits 65535.
TEST_F(StackTest, TcpSuperFrameMayExceedMtu) {
  cfg.mtu = 1500;
  make();
  wire::TcpRepr h;
  h.src_port = 443;
  h.dst_port = 40000;
  h.flags = wire::tcp_flags::ack;
  auto fill4 = [&](MutBytes l4) { h.emit_v4_partial(l4, kRemote, g.guest4); };
  auto fill6 = [&](MutBytes l4) { h.emit_v6_partial(l4, kRemote6, g.guest6); };
  const TcpOffload tso{1460, true};
  ASSERT_TRUE(iface->send_tcp_v4(kRemote, g.guest4, 20 + 43800, fill4, tso));
  ASSERT_EQ(sink.frames.size(), 1u);
  EXPECT_EQ(sink.frames[0].size(), 14u + 20 + 20 + 43800);
  const TxOffload& o = sink.offloads[0];
  EXPECT_EQ(o.gso, TxOffload::Gso::tcpv4);
  EXPECT_EQ(o.gso_size, 1460);
  EXPECT_TRUE(o.partial);
  EXPECT_EQ(o.csum_start, 34);
  EXPECT_EQ(o.csum_offset, 16);
  EXPECT_EQ(o.hdr_len, 54);
  EXPECT_EQ(o.segments(sink.frames[0].size()), 30u);
  auto r = test::as_ipv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ip.payload_len, 20u + 43800);
  // IPv6: csum_start after the 40-byte header.
  ASSERT_TRUE(iface->send_tcp_v6(kRemote6, g.guest6, 20 + 65000, fill6, TcpOffload{1440, true}));
  EXPECT_EQ(sink.offloads.back().gso, TxOffload::Gso::tcpv6);
  EXPECT_EQ(sink.offloads.back().csum_start, 54);
  EXPECT_EQ(sink.offloads.back().hdr_len, 74);
  // Refused: no TSO (plain, partial or not) beyond the MTU; a gso_size whose segments would
  // exceed the MTU; a packet beyond 65535 bytes; TSO without a partial checksum.
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 1481, fill4, TcpOffload{0, true}));
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 1481, fill4, TcpOffload{}));
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 20 + 4000, fill4, TcpOffload{1461, true}));
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 0xffff - 19, fill4, tso));
  EXPECT_FALSE(iface->send_tcp_v6(kRemote6, g.guest6, 0xffff - 39, fill6, TcpOffload{1440, true}));
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 20 + 4000, fill4, TcpOffload{1460, false}));
  EXPECT_FALSE(iface->send_tcp_v6(kRemote6, g.guest6, 20 + 4000, fill6, TcpOffload{1441, true}));
  EXPECT_EQ(sink.frames.size(), 2u);
  // A partial checksum within the MTU: no GSO, NEEDS_CSUM only.
  ASSERT_TRUE(iface->send_tcp_v4(kRemote, g.guest4, 1480, fill4, TcpOffload{0, true}));
  EXPECT_EQ(sink.offloads.back().gso, TxOffload::Gso::none);
  EXPECT_TRUE(sink.offloads.back().partial);
  // Too short to hold the TCP header the sink needs: refused as a bug.
  const uint64_t bugs = counters.get(Counter::internal_errors);
  EXPECT_FALSE(iface->send_tcp_v4(kRemote, g.guest4, 10, [](MutBytes) {}, TcpOffload{0, true}));
  EXPECT_EQ(counters.get(Counter::internal_errors), bugs + 1);
  // A "super-frame" of one segment is sent without GSO.
  ASSERT_TRUE(iface->send_tcp_v4(kRemote, g.guest4, 20 + 1000, fill4, tso));
  EXPECT_EQ(sink.offloads.back().gso, TxOffload::Gso::none);
}

TEST_F(StackTest, SendIpv4CanEmitFragments) {
  Ipv4SendOptions opt;
  opt.dont_fragment = false;
  opt.more_fragments = true;
  opt.frag_offset = 1480;
  opt.ident = 0x1234;
  ASSERT_TRUE(iface->send_ipv4(kRemote, g.guest4, wire::kProtoUdp, 16, [](MutBytes) {}, opt));
  auto r = test::as_ipv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ip.more_fragments);
  EXPECT_EQ(r->ip.frag_offset, 1480);
  EXPECT_EQ(r->ip.ident, 0x1234);
  EXPECT_FALSE(r->ip.dont_fragment);
}

// R-UDP-4: a datagram beyond the MTU is cut into IPv4 fragments sharing one id; one that
// fits goes out whole with DF.
TEST_F(StackTest, SendUdpV4FragmentsBeyondTheMtu) {
  cfg.mtu = 1500;
  make();
  Buf small = test::text("small");
  ASSERT_TRUE(iface->send_udp_v4(kRemote, g.guest4, 53, 40000, test::span(small)));
  ASSERT_EQ(sink.frames.size(), 1u);
  auto whole = test::as_ipv4(out(0));
  ASSERT_TRUE(whole);
  EXPECT_TRUE(whole->ip.dont_fragment);
  sink.frames.clear();

  Buf big(3000, std::byte{0x5a});
  ASSERT_TRUE(iface->send_udp_v4(kRemote, g.guest4, 53, 40000, test::span(big)));
  ASSERT_EQ(sink.frames.size(), 3u);  // 3008 bytes of UDP in 1480 + 1480 + 48
  const uint16_t offsets[] = {0, 1480, 2960};
  std::optional<uint16_t> ident;
  for (size_t i = 0; i < 3; ++i) {
    auto r = test::as_ipv4(out(i));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->ip.dont_fragment);
    EXPECT_EQ(r->ip.more_fragments, i < 2);
    EXPECT_EQ(r->ip.frag_offset, offsets[i]);
    if (!ident) ident = r->ip.ident;
    EXPECT_EQ(r->ip.ident, *ident);
    EXPECT_LE(sink.frames[i].size(), 1514u);
  }
  auto first = test::as_ipv4(out(0));
  EXPECT_EQ(load_be16(first->l4.data() + 4), 3008);  // the UDP length covers the datagram
}

TEST_F(StackTest, SendUdpV6FragmentsWithAFragmentHeader) {
  cfg.mtu = 1500;
  make();
  Buf big(3000, std::byte{0x5a});
  ASSERT_TRUE(iface->send_udp_v6(kRemote6, g.guest6, 53, 40000, test::span(big)));
  ASSERT_EQ(sink.frames.size(), 3u);  // 1448-byte chunks (1500 - 40 - 8, a multiple of 8)
  for (const auto& f : sink.frames) {
    EXPECT_LE(f.size(), 1514u);
    EXPECT_EQ(std::to_integer<uint8_t>(f[14 + 6]), wire::kNextFragment);
  }
}

TEST_F(StackTest, SendRespectsMtu) {
  cfg.mtu = 1500;
  make();
  auto fill = [](MutBytes) {};
  EXPECT_TRUE(iface->send_ipv4(kRemote, g.guest4, wire::kProtoTcp, 1480, fill));
  EXPECT_FALSE(iface->send_ipv4(kRemote, g.guest4, wire::kProtoTcp, 1481, fill));
  EXPECT_TRUE(iface->send_ipv6(kRemote6, g.guest6, wire::kProtoTcp, 1460, fill));
  EXPECT_FALSE(iface->send_ipv6(kRemote6, g.guest6, wire::kProtoTcp, 1461, fill));
  EXPECT_EQ(sink.frames.size(), 2u);
  EXPECT_EQ(sink.frames[0].size(), 1514u);
}

TEST_F(StackTest, ReentrantSendIsRefused) {
  bool inner = true;
  EXPECT_TRUE(iface->send_ipv4(kRemote, g.guest4, wire::kProtoTcp, 20, [&](MutBytes) {
    inner = iface->send_ipv4(kRemote, g.guest4, wire::kProtoTcp, 20, [](MutBytes) {});
  }));
  EXPECT_FALSE(inner);
  EXPECT_EQ(counters.get(Counter::internal_errors), 1u);
}

/// Parses a guest frame the way the Interface hands it to PacketHandler.
struct Offending4 {
  wire::Ipv4Repr ip;
  Bytes l4;
};
Offending4 offending4(const Buf& frame) {
  auto r = test::as_ipv4(test::span(frame));
  return {r->ip, r->l4};
}

TEST_F(StackTest, IcmpErrorV4QuotesUpTo576Bytes) {
  Buf big = g.udp4(g.guest4, kRemote, 1234, 80, test::span(Buf(1000, std::byte{0xab})));
  auto o = offending4(big);
  ASSERT_TRUE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, wire::kIcmpDestUnreachable, 3, t0));
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.payload_len + 20u, 576u);
  EXPECT_EQ(r->icmp.code, 3);
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(big).subspan(14, 576 - 28)));
}

TEST_F(StackTest, IcmpErrorV4CarriesNextHopMtu) {
  Buf f = g.udp4(g.guest4, kRemote, 1234, 80, {});
  auto o = offending4(f);
  ASSERT_TRUE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, wire::kIcmpDestUnreachable, 4, t0, 1400));
  auto r = test::as_icmpv4(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->icmp.next_hop_mtu, 1400);
}

TEST_F(StackTest, IcmpErrorV4Exclusions) {
  // Frames stay alive in `keep`: the Reprs' l4 spans point into them.
  std::vector<Buf> keep;
  auto offending = [&](Buf f) {
    keep.push_back(std::move(f));
    return offending4(keep.back());
  };
  keep.reserve(8);
  // About an ICMP error.
  wire::Icmpv4Repr err;
  err.type = wire::kIcmpTimeExceeded;
  Buf l4 = test::icmpv4_msg(err);
  auto o = offending(g.ipv4(g.ip4_header(kRemote, wire::kProtoIcmp), test::span(l4)));
  EXPECT_FALSE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 1, t0));
  // Non-first fragment.
  wire::Ipv4Repr frag = g.ip4_header(kRemote, wire::kProtoUdp);
  frag.frag_offset = 64;
  o = offending(g.ipv4(frag, test::span(Buf(16))));
  EXPECT_FALSE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 1, t0));
  // Multicast destination, unspecified source.
  o = offending(g.udp4(g.guest4, Ipv4Addr::from_octets(239, 1, 1, 1), 1, 2, {}));
  EXPECT_FALSE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 1, t0));
  o = offending(g.udp4(Ipv4Addr{}, kRemote, 1, 2, {}));
  EXPECT_FALSE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 1, t0));
  EXPECT_TRUE(sink.frames.empty());
}

TEST_F(StackTest, IcmpErrorsAreRateLimited) {
  Buf f = g.udp4(g.guest4, kRemote, 1234, 80, {});
  auto o = offending4(f);
  int sent = 0;
  for (int i = 0; i < 150; ++i) sent += iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 3, t0);
  EXPECT_EQ(sent, 100);  // burst 100
  EXPECT_TRUE(iface->send_icmp_error_v4(o.ip, o.l4, cfg.gateway4, 3, 3, t0 + std::chrono::milliseconds(1)));
}

TEST_F(StackTest, IcmpErrorV6QuotesUpTo1280Bytes) {
  Buf big = g.udp6(kRemote6, 1234, 80, test::span(Buf(2000, std::byte{0xcd})));
  auto p = test::as_ipv6(test::span(big));
  ASSERT_TRUE(p);
  ASSERT_TRUE(iface->send_icmp_error_v6(p->ip, p->l4, cfg.gateway6, wire::kIcmpv6DestUnreachable, 1, t0));
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outer.ip.payload_len + 40u, 1280u);
  EXPECT_TRUE(test::bytes_equal(r->icmp.data, test::span(big).subspan(14, 1280 - 48)));
}

TEST_F(StackTest, PacketTooBigCarriesMtu) {
  Buf f = g.udp6(kRemote6, 1234, 80, {});
  auto p = test::as_ipv6(test::span(f));
  ASSERT_TRUE(iface->send_icmp_error_v6(p->ip, p->l4, cfg.gateway6, wire::kIcmpv6PacketTooBig, 0, t0, 1280));
  auto r = test::as_icmpv6(out(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->icmp.mtu_or_pointer, 1280u);
}

}  // namespace
}  // namespace moat::stack
