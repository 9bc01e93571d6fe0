// The fuzz targets' length/checksum repair (fuzz/frame_fixup.h, SPEC R-HARD-6): frames
// broken the way byte mutations break them come out accepted by the production parsers of
// a normal build, which verify every checksum (the fuzz build skips that).
#include <gtest/gtest.h>

#include "../fuzz/frame_fixup.h"
#include "support/frame_builder.h"
#include "transport/vnet.h"
#include "wire/tcp.h"

namespace moat::test {
namespace {

const Ipv4Addr kDst4 = Ipv4Addr::from_octets(192, 0, 2, 10);
const Ipv6Addr kDst6 = *Ipv6Addr::parse("2001:db8::10");
constexpr size_t kEth = wire::EthernetRepr::kHeaderLen;

uint8_t* u8(Buf& b) { return reinterpret_cast<uint8_t*>(b.data()); }

/// The L4 checksum of `l4` verifies under the pseudo-header.
bool l4_ok(const Ipv4Addr& s, const Ipv4Addr& d, uint8_t proto, Bytes l4) {
  wire::Checksum c = wire::pseudo_header_v4(s, d, proto, uint16_t(l4.size()));
  c.add(l4);
  return c.finish() == 0;
}
bool l4_ok(const Ipv6Addr& s, const Ipv6Addr& d, uint8_t proto, Bytes l4) {
  wire::Checksum c = wire::pseudo_header_v6(s, d, proto, uint32_t(l4.size()));
  c.add(l4);
  return c.finish() == 0;
}

Buf tcp4_frame(const GuestFrames& g, size_t payload) {
  wire::TcpRepr t;
  t.src_port = 40000;
  t.dst_port = 443;
  t.seq = wire::SeqNum{1};
  t.flags = wire::tcp_flags::ack;
  Buf l4(t.header_len() + payload, std::byte{0x61});
  t.emit_v4(MutBytes(l4), g.guest4, kDst4);
  return g.ipv4(g.ip4_header(kDst4, wire::kProtoTcp), span(l4));
}

TEST(FrameFixup, Ipv4TcpAfterInsertedBytesAndBrokenFields) {
  GuestFrames g;
  Buf f = tcp4_frame(g, 100);
  // A mutation inserted 7 bytes and scribbled on both checksums and the total length.
  f.insert(f.begin() + long(kEth + 20 + 30), 7, std::byte{0x42});
  f[kEth + 2] = std::byte{0x12};
  f[kEth + 10] = std::byte{0xff};
  f[kEth + 20 + 16] ^= std::byte{0x55};
  ASSERT_FALSE(as_ipv4(span(f)));  // the normal build's parser refuses it
  fuzz::fix_frame(u8(f), f.size());
  auto p = as_ipv4(span(f));
  ASSERT_TRUE(p);  // header checksum and total length right again
  EXPECT_EQ(p->ip.payload_len, f.size() - kEth - 20);
  EXPECT_TRUE(l4_ok(g.guest4, kDst4, wire::kProtoTcp, p->l4));
}

TEST(FrameFixup, Ipv4UdpLengthAndChecksum) {
  GuestFrames g;
  Buf f = g.udp4(g.guest4, kDst4, 5000, 53, span(text("hello, world")));
  f.resize(f.size() - 3);  // truncated by a mutation
  fuzz::fix_frame(u8(f), f.size());
  auto p = as_ipv4(span(f));
  ASSERT_TRUE(p);
  Bytes payload;
  auto u = wire::UdpRepr::parse(p->l4, &payload);
  ASSERT_TRUE(u);
  EXPECT_EQ(payload.size(), 12u - 3u);
  EXPECT_TRUE(l4_ok(g.guest4, kDst4, wire::kProtoUdp, p->l4));
}

TEST(FrameFixup, Icmpv4EchoChecksum) {
  GuestFrames g;
  Buf f = g.icmp4_echo(kDst4, 1, 2, span(text("ping")));
  f.push_back(std::byte{0x99});
  fuzz::fix_frame(u8(f), f.size());
  auto p = as_icmpv4(span(f));
  ASSERT_TRUE(p);  // Icmpv4Repr::parse verifies the checksum
  EXPECT_EQ(p->icmp.data.size(), 5u);
}

TEST(FrameFixup, Ipv6UdpBehindHopByHopHeader) {
  GuestFrames g;
  Buf udp = udp6_datagram(5000, 53, span(text("query")), g.guest6, kDst6);
  // Hop-by-hop header (8 bytes: next = UDP, len 0, PadN) in front of the datagram.
  Buf l3ext = {std::byte{wire::kProtoUdp}, std::byte{0}, std::byte{1}, std::byte{4},
               std::byte{0},               std::byte{0}, std::byte{0}, std::byte{0}};
  l3ext.insert(l3ext.end(), udp.begin(), udp.end());
  wire::Ipv6Repr ip = g.ip6_header(g.guest6, kDst6, wire::kNextHopByHop);
  Buf f = g.ipv6(ip, span(l3ext));
  f.insert(f.end(), 4, std::byte{0x7});  // grown by a mutation: lengths and checksum stale
  fuzz::fix_frame(u8(f), f.size());
  auto p = as_ipv6(span(f));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ip.next_header, wire::kProtoUdp);
  EXPECT_EQ(p->l4.size(), udp.size() + 4);
  Bytes payload;
  ASSERT_TRUE(wire::UdpRepr::parse(p->l4, &payload));
  EXPECT_TRUE(l4_ok(g.guest6, kDst6, wire::kProtoUdp, p->l4));
}

TEST(FrameFixup, Icmpv6EchoChecksum) {
  GuestFrames g;
  Buf f = g.icmp6_echo(kDst6, 1, 2, span(text("ping6")));
  f[f.size() - 1] = std::byte{0};
  fuzz::fix_frame(u8(f), f.size());
  ASSERT_TRUE(as_icmpv6(span(f)));  // Icmpv6Repr::parse verifies the checksum
}

TEST(FrameFixup, FragmentKeepsItsL4BytesButGetsAValidHeader) {
  GuestFrames g;
  wire::Ipv4Repr ip = g.ip4_header(kDst4, wire::kProtoUdp);
  ip.more_fragments = true;
  Buf l4 = udp4_datagram(5000, 53, span(text("first fragment!!")), g.guest4, kDst4);
  Buf f = g.ipv4(ip, span(l4));
  const Buf before(f.begin() + long(kEth + 20), f.end());
  f[kEth + 2] = std::byte{0xff};  // total length broken
  fuzz::fix_frame(u8(f), f.size());
  auto p = as_ipv4(span(f));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->ip.more_fragments);
  EXPECT_TRUE(bytes_equal(p->l4, span(before)));  // no L4 "fix" over bytes we do not have
}

TEST(FrameFixup, PartialChecksumIsWhatAVirtioDeviceCompletes) {
  GuestFrames g;
  Buf f = tcp4_frame(g, 300);
  f.push_back(std::byte{1});  // odd length, and every length stale
  fuzz::L4Spot spot;
  spot.partial = true;
  fuzz::fix_frame(u8(f), f.size(), &spot);
  ASSERT_TRUE(spot.found);
  EXPECT_EQ(spot.start, kEth + 20);
  EXPECT_EQ(spot.offset, 16u);
  // What the device does (transport/vnet.h complete_checksum) gives a verifying segment.
  ASSERT_TRUE(transport::complete_checksum(MutBytes(f), uint16_t(spot.start), uint16_t(spot.offset)));
  auto p = as_ipv4(span(f));
  ASSERT_TRUE(p);
  EXPECT_TRUE(l4_ok(g.guest4, kDst4, wire::kProtoTcp, p->l4));
}

TEST(FrameFixup, NonIpAndRuntsAreLeftAlone) {
  GuestFrames g;
  Buf arp = g.arp_request(g.gateway4);
  const Buf copy = arp;
  fuzz::fix_frame(u8(arp), arp.size());
  EXPECT_EQ(arp, copy);
  Buf runt(kEth + 10, std::byte{0x45});
  runt[12] = std::byte{0x08};
  runt[13] = std::byte{0x00};
  const Buf runt_copy = runt;
  fuzz::fix_frame(u8(runt), runt.size());  // shorter than an IPv4 header: untouched
  EXPECT_EQ(runt, runt_copy);
}

}  // namespace
}  // namespace moat::test
