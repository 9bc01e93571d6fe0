#include "wire/arp.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const MacAddr kGuestMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
const MacAddr kGatewayMac{{0x52, 0x55, 0x00, 0x0a, 0x02, 0x02}};
const Ipv4Addr kGuestIp = Ipv4Addr::from_octets(10, 0, 2, 15);
const Ipv4Addr kGatewayIp = Ipv4Addr::from_octets(10, 0, 2, 2);

Bytes arp_payload() { return bytes_of(kArpRequest).subspan(kEthLen); }

TEST(Arp, DecodeRequestWithPadding) {
  // 46 bytes: 28 of ARP and 18 of Ethernet padding, which must be ignored.
  ASSERT_EQ(arp_payload().size(), 46u);
  auto r = ArpRepr::parse(arp_payload());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->op, ArpOp::request);
  EXPECT_EQ(r->sender_mac, kGuestMac);
  EXPECT_EQ(r->sender_ip, kGuestIp);
  EXPECT_EQ(r->target_mac, MacAddr{});
  EXPECT_EQ(r->target_ip, kGatewayIp);
}

TEST(Arp, EncodeRequestByteExact) {
  const ArpRepr r{ArpOp::request, kGuestMac, kGuestIp, MacAddr{}, kGatewayIp};
  std::vector<uint8_t> out(ArpRepr::kLen);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kArpRequest, kEthLen, ArpRepr::kLen));
}

TEST(Arp, EncodeReplyByteExact) {
  const ArpRepr r{ArpOp::reply, kGatewayMac, kGatewayIp, kGuestMac, kGuestIp};
  std::vector<uint8_t> out(ArpRepr::kLen);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  const std::vector<uint8_t> want{0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,  // eth/ipv4, reply
                                  0x52, 0x55, 0x00, 0x0a, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x02,
                                  0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x02, 0x0f};
  EXPECT_EQ(out, want);
  auto back = ArpRepr::parse(bytes_of(out));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(Arp, EveryTruncatedPrefixFails) {
  for (size_t n = 0; n < ArpRepr::kLen; ++n) {
    auto r = ArpRepr::parse(arp_payload().first(n));
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error(), ParseError::truncated);
  }
  EXPECT_TRUE(ArpRepr::parse(arp_payload().first(ArpRepr::kLen)).has_value());
}

TEST(Arp, RejectsOtherHardwareAndProtocols) {
  // (offset, value) pairs that make it not Ethernet/IPv4.
  const std::pair<size_t, uint8_t> bad[] = {{1, 6}, {2, 0x86}, {3, 0xdd}, {4, 8}, {5, 16}};
  for (auto [off, v] : bad) {
    auto b = vec(arp_payload());
    b[off] = v;
    auto r = ArpRepr::parse(bytes_of(b));
    ASSERT_FALSE(r.has_value()) << off;
    EXPECT_EQ(r.error(), ParseError::bad_version) << off;
  }
}

TEST(Arp, RejectsUnknownOp) {
  for (uint8_t op : {0, 3, 4, 8}) {  // 3/4 are RARP, 8 InARP
    auto b = vec(arp_payload());
    b[7] = op;
    auto r = ArpRepr::parse(bytes_of(b));
    ASSERT_FALSE(r.has_value()) << int(op);
    EXPECT_EQ(r.error(), ParseError::unsupported);
  }
}

TEST(Arp, EmitIntoShortBufferWritesNothing) {
  std::vector<uint8_t> out(ArpRepr::kLen - 1, 0xaa);
  EXPECT_FALSE((ArpRepr{ArpOp::reply, kGatewayMac, kGatewayIp, kGuestMac, kGuestIp}.emit(mut_bytes_of(out))));
  EXPECT_EQ(out, std::vector<uint8_t>(ArpRepr::kLen - 1, 0xaa));
}

}  // namespace
}  // namespace moat::wire
