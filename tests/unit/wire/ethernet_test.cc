#include "wire/ethernet.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const MacAddr kGuestMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
const MacAddr kGatewayMac{{0x52, 0x55, 0x00, 0x0a, 0x02, 0x02}};

TEST(Ethernet, DecodeArpBroadcast) {
  auto r = EthernetRepr::parse(bytes_of(kArpRequest));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->dst, MacAddr::broadcast());
  EXPECT_EQ(r->src, kGuestMac);
  EXPECT_EQ(r->ethertype, kEtherTypeArp);
}

TEST(Ethernet, DecodeIpv4AndIpv6) {
  auto v4 = EthernetRepr::parse(bytes_of(kIcmpEcho));
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->dst, kGatewayMac);
  EXPECT_EQ(v4->ethertype, kEtherTypeIpv4);
  auto v6 = EthernetRepr::parse(bytes_of(kIpv6Tcp));
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->src, kGatewayMac);
  EXPECT_EQ(v6->dst, kGuestMac);
  EXPECT_EQ(v6->ethertype, kEtherTypeIpv6);
}

TEST(Ethernet, EncodeByteExact) {
  const EthernetRepr r{kGatewayMac, kGuestMac, kEtherTypeIpv4};
  std::vector<uint8_t> out(EthernetRepr::kHeaderLen);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kIcmpEcho, 0, kEthLen));
}

TEST(Ethernet, RoundTrip) {
  const EthernetRepr r{MacAddr::broadcast(), kGuestMac, kEtherTypeVlan};
  std::vector<uint8_t> out(EthernetRepr::kHeaderLen + 4, 0xee);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out[14], 0xee);  // emit writes only the header
  auto back = EthernetRepr::parse(bytes_of(out));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(Ethernet, EveryTruncatedPrefixFails) {
  for (size_t n = 0; n < EthernetRepr::kHeaderLen; ++n) {
    auto r = EthernetRepr::parse(bytes_of(kArpRequest).first(n));
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error(), ParseError::truncated);
  }
  EXPECT_TRUE(EthernetRepr::parse(bytes_of(kArpRequest).first(EthernetRepr::kHeaderLen)).has_value());
}

TEST(Ethernet, EmitIntoShortBufferWritesNothing) {
  std::vector<uint8_t> out(13, 0xaa);
  EXPECT_FALSE((EthernetRepr{kGatewayMac, kGuestMac, kEtherTypeArp}.emit(mut_bytes_of(out))));
  EXPECT_EQ(out, std::vector<uint8_t>(13, 0xaa));
}

}  // namespace
}  // namespace moat::wire
