// virtio-net header codec and the from-guest offload handling (R-TR-6).
#include "transport/vnet.h"

#include <gtest/gtest.h>

#include <vector>

#include "support/frame_builder.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"
#include "wire/udp.h"

namespace moat::transport {
namespace {

using test::Buf;

Buf with_header(const VnetHeader& h, const Buf& frame, size_t hdr_len = kVnetHdrLegacy) {
  Buf b(hdr_len + frame.size());
  h.emit(MutBytes(b.data(), hdr_len));
  std::copy(frame.begin(), frame.end(), b.begin() + long(hdr_len));
  return b;
}

class VnetTest : public ::testing::Test {
 protected:
  std::vector<Buf> run(Buf buf, size_t hdr_len = kVnetHdrLegacy) {
    VnetFromGuest v(hdr_len, counters);
    std::vector<Buf> out;
    v.process(MutBytes(buf.data(), buf.size()), [&](Bytes f) { out.push_back(test::to_buf(f)); });
    return out;
  }
  Counters counters;
  test::GuestFrames g;
  Ipv4Addr remote4 = Ipv4Addr::from_octets(203, 0, 113, 7);
  Ipv6Addr remote6 = *Ipv6Addr::parse("2001:db8::7");
};

TEST(VnetHeader, LittleEndianLayout) {
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoTcpv4 | kVnetGsoEcn;
  h.hdr_len = 0x0102;
  h.gso_size = 0x0304;
  h.csum_start = 0x0506;
  h.csum_offset = 0x0708;
  std::vector<std::byte> b(kVnetHdrV1, std::byte{0xee});
  h.emit(MutBytes(b.data(), b.size()));
  const uint8_t want[] = {0x01, 0x81, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x08, 0x07, 0x00, 0x00};
  for (size_t i = 0; i < sizeof want; ++i) EXPECT_EQ(uint8_t(b[i]), want[i]) << i;
  VnetHeader back = VnetHeader::parse(Bytes(b.data(), b.size()));
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.gso_type, h.gso_type);
  EXPECT_EQ(back.hdr_len, h.hdr_len);
  EXPECT_EQ(back.gso_size, h.gso_size);
  EXPECT_EQ(back.csum_start, h.csum_start);
  EXPECT_EQ(back.csum_offset, h.csum_offset);
}

TEST_F(VnetTest, PlainFrameIsDeliveredUnchanged) {
  Buf f = g.udp4(g.guest4, remote4, 1000, 2000, test::span(test::text("hello")));
  for (size_t hl : {kVnetHdrLegacy, kVnetHdrV1}) {
    auto out = run(with_header(VnetHeader{}, f, hl), hl);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], f);
  }
  EXPECT_EQ(counters.get(Counter::link_from_guest_frames), 2u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(VnetTest, PartialTcpChecksumStaysPartial) {
  // R-NET-3: TCP/UDP checksums are never validated, so NEEDS_CSUM costs nothing here.
  Buf f = g.tcp4_raw(remote4, test::span(Buf(40, std::byte{1})));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.csum_start = 34;
  h.csum_offset = 16;
  auto out = run(with_header(h, f));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], f);
}

TEST_F(VnetTest, PartialIcmpChecksumIsCompleted) {
  Buf f = g.icmp4_echo(g.gateway4, 7, 1, test::span(test::text("ping data")));
  // Make the checksum partial the way a guest NIC would: the field holds 0 (no pseudo
  // header for ICMPv4).
  const size_t l4 = 14 + 20;
  f[l4 + 2] = std::byte{0};
  f[l4 + 3] = std::byte{0};
  ASSERT_FALSE(wire::Icmpv4Repr::parse(Bytes(f.data() + l4, f.size() - l4)));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.csum_start = uint16_t(l4);
  h.csum_offset = 2;
  auto out = run(with_header(h, f));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(wire::Icmpv4Repr::parse(Bytes(out[0].data() + l4, out[0].size() - l4)));
}

TEST_F(VnetTest, BadHeadersAreDropped) {
  Buf tcp = g.tcp4_raw(remote4, test::span(Buf(40)));
  Buf udp = g.udp4(g.guest4, remote4, 1, 2, test::span(Buf(10)));
  VnetHeader off_end;
  off_end.flags = kVnetNeedsCsum;
  off_end.csum_start = uint16_t(tcp.size() - 1);
  off_end.csum_offset = 0;
  EXPECT_TRUE(run(with_header(off_end, tcp)).empty());
  VnetHeader unknown;
  unknown.gso_type = 2;  // not a virtio-net GSO type
  EXPECT_TRUE(run(with_header(unknown, tcp)).empty());
  VnetHeader tso_on_udp;
  tso_on_udp.gso_type = kVnetGsoTcpv4;
  tso_on_udp.gso_size = 1000;
  EXPECT_TRUE(run(with_header(tso_on_udp, udp)).empty());
  VnetHeader uso_zero;
  uso_zero.gso_type = kVnetGsoUdpL4;
  EXPECT_TRUE(run(with_header(uso_zero, udp)).empty());
  EXPECT_TRUE(run(Buf(5)).empty());  // shorter than the header
  EXPECT_EQ(counters.dropped(DropReason::vnet_hdr), 5u);
  EXPECT_TRUE(run(with_header(VnetHeader{}, Buf(13))).empty());
  EXPECT_EQ(counters.dropped(DropReason::runt), 1u);
  EXPECT_EQ(counters.total_drops(), 6u);
}

TEST_F(VnetTest, TsoAndUfoFramesPassAsOne) {
  Buf tcp = g.tcp4_raw(remote4, test::span(Buf(9000, std::byte{3})));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoTcpv4 | kVnetGsoEcn;  // the ECN bit is ignored
  h.gso_size = 1448;
  h.csum_start = 34;
  h.csum_offset = 16;
  auto out = run(with_header(h, tcp));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], tcp);
  Buf udp = g.udp4(g.guest4, remote4, 1, 2, test::span(Buf(4000)));
  VnetHeader u;
  u.gso_type = kVnetGsoUdp;
  u.gso_size = 1472;
  out = run(with_header(u, udp));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], udp);
}

/// Checks one USO segment: valid IP header, UDP length and a complete checksum.
template <class Ip>
void expect_valid_udp(const Buf& f, size_t ip_hdr, size_t want_payload, Buf* payload, const Ip& ip) {
  Bytes l4(f.data() + 14 + ip_hdr, f.size() - 14 - ip_hdr);
  Bytes p;
  auto u = wire::UdpRepr::parse(l4, &p);
  ASSERT_TRUE(u);
  EXPECT_EQ(p.size(), want_payload);
  EXPECT_NE(u->checksum, 0);
  wire::Checksum c;
  if constexpr (std::is_same_v<Ip, wire::Ipv4Repr>) c = wire::pseudo_header_v4(ip.src, ip.dst, 17, uint16_t(l4.size()));
  else c = wire::pseudo_header_v6(ip.src, ip.dst, 17, uint32_t(l4.size()));
  c.add(l4);
  EXPECT_EQ(c.finish(), 0) << "UDP checksum does not verify";
  payload->insert(payload->end(), p.begin(), p.end());
}

TEST_F(VnetTest, UsoIsSplitIntoGsoSizeDatagramsV4) {
  Buf data(2500);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i * 7);
  Buf f = g.udp4(g.guest4, remote4, 4000, 53, test::span(data));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoUdpL4;
  h.gso_size = 1000;
  h.csum_start = 34;
  h.csum_offset = 6;
  auto out = run(with_header(h, f));
  ASSERT_EQ(out.size(), 3u);
  Buf joined;
  uint16_t first_ident = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    auto ip = test::as_ipv4(test::span(out[i]));  // verifies the header checksum
    ASSERT_TRUE(ip);
    if (i == 0) first_ident = ip->ip.ident;
    EXPECT_EQ(ip->ip.ident, uint16_t(first_ident + i));
    EXPECT_EQ(ip->eth.src, g.guest_mac);
    expect_valid_udp(out[i], 20, i < 2 ? 1000 : 500, &joined, ip->ip);
  }
  EXPECT_EQ(joined, data);
  EXPECT_EQ(counters.get(Counter::link_from_guest_frames), 3u);
}

TEST_F(VnetTest, UsoIsSplitIntoGsoSizeDatagramsV6) {
  Buf data(3000, std::byte{9});
  Buf f = g.udp6(remote6, 4000, 443, test::span(data));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoUdpL4;
  h.gso_size = 1200;
  h.csum_start = 54;
  h.csum_offset = 6;
  auto out = run(with_header(h, f, kVnetHdrV1), kVnetHdrV1);
  ASSERT_EQ(out.size(), 3u);
  Buf joined;
  for (size_t i = 0; i < out.size(); ++i) {
    auto ip = test::as_ipv6(test::span(out[i]));
    ASSERT_TRUE(ip);
    expect_valid_udp(out[i], 40, i < 2 ? 1200 : 600, &joined, ip->ip);
  }
  EXPECT_EQ(joined, data);
}

}  // namespace
}  // namespace moat::transport
