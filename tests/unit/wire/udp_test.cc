#include "wire/udp.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const Ipv4Addr kGuestIp = Ipv4Addr::from_octets(10, 0, 2, 15);
const Ipv4Addr kDnsIp = Ipv4Addr::from_octets(10, 0, 2, 3);
const Ipv6Addr kGuest6{{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
const Ipv6Addr kRemote6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

std::vector<uint8_t> dns_datagram() { return vec(kUdpDns, kL4Off4); }
/// The UDP datagram inside the IPv6 vector (behind hop-by-hop and fragment headers).
std::vector<uint8_t> v6_datagram() { return vec(kIpv6HbhFragUdp, kL4Off6 + 16); }

ParseError error_of(const std::vector<uint8_t>& d) {
  auto r = UdpRepr::parse(bytes_of(d), nullptr);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TEST(Udp, DecodeDnsQuery) {
  const auto d = dns_datagram();
  Bytes payload;
  auto r = UdpRepr::parse(bytes_of(d), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->src_port, 40000);
  EXPECT_EQ(r->dst_port, 53);
  EXPECT_EQ(r->checksum, 0xcfe1);
  EXPECT_EQ(vec(payload), vec(kUdpDns, kL4Off4 + 8));
  EXPECT_EQ(payload.size(), 29u);
}

TEST(Udp, EncodeV4ByteExact) {
  auto out = dns_datagram();
  std::fill(out.begin(), out.begin() + 8, 0);  // only the payload is in place
  ASSERT_TRUE((UdpRepr{40000, 53}.emit_v4(mut_bytes_of(out), kGuestIp, kDnsIp)));
  EXPECT_EQ(out, dns_datagram());
}

TEST(Udp, EncodeV6ByteExact) {
  auto out = v6_datagram();
  std::fill(out.begin(), out.begin() + 8, 0xff);
  ASSERT_TRUE((UdpRepr{5353, 53}.emit_v6(mut_bytes_of(out), kGuest6, kRemote6)));
  EXPECT_EQ(out, v6_datagram());
}

TEST(Udp, RoundTrip) {
  std::vector<uint8_t> out(8 + 100, 0x3c);
  const UdpRepr r{12345, 443};
  ASSERT_TRUE(r.emit_v6(mut_bytes_of(out), kRemote6, kGuest6));
  Bytes payload;
  auto back = UdpRepr::parse(bytes_of(out), &payload);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->src_port, 12345);
  EXPECT_EQ(back->dst_port, 443);
  EXPECT_NE(back->checksum, 0);
  EXPECT_EQ(payload.size(), 100u);
  Checksum c = pseudo_header_v6(kRemote6, kGuest6, kProtoUdp, uint32_t(out.size()));
  c.add(bytes_of(out));
  EXPECT_EQ(c.finish(), 0);
}

TEST(Udp, ComputedZeroChecksumIsSentAsAllOnes) {
  // Make the data sum cancel the rest: with two payload bytes X = (checksum with X = 0),
  // the ones'-complement sum becomes 0xffff and the computed checksum 0 (RFC 768).
  std::vector<uint8_t> out(8 + 2, 0);
  ASSERT_TRUE((UdpRepr{1, 2}.emit_v4(mut_bytes_of(out), kGuestIp, kDnsIp)));
  out[8] = out[6];
  out[9] = out[7];
  ASSERT_TRUE((UdpRepr{1, 2}.emit_v4(mut_bytes_of(out), kGuestIp, kDnsIp)));
  EXPECT_EQ(out[6], 0xff);
  EXPECT_EQ(out[7], 0xff);
  auto back = UdpRepr::parse(bytes_of(out), nullptr);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->checksum, 0xffff);
}

TEST(Udp, ZeroChecksumIsReportedRaw) {
  auto d = dns_datagram();
  d[6] = d[7] = 0;
  auto r = UdpRepr::parse(bytes_of(d), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->checksum, 0);  // the stack drops it for IPv6 (SPEC R-NET-4)
}

TEST(Udp, ChecksumIsNotVerified) {
  auto d = dns_datagram();
  d[20] ^= 0xff;  // SPEC R-NET-3
  EXPECT_TRUE(UdpRepr::parse(bytes_of(d), nullptr).has_value());
}

TEST(Udp, EveryTruncatedPrefixFails) {
  const auto d = dns_datagram();
  for (size_t n = 0; n < d.size(); ++n) {
    auto r = UdpRepr::parse(bytes_of(d).first(n), nullptr);
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error(), ParseError::truncated) << n;
  }
}

TEST(Udp, LengthBelowHeaderIsBadLength) {
  for (uint8_t len = 0; len < 8; ++len) {
    auto d = dns_datagram();
    d[4] = 0;
    d[5] = len;
    EXPECT_EQ(error_of(d), ParseError::bad_length) << int(len);
  }
}

TEST(Udp, LengthBeyondBufferIsTruncated) {
  auto d = dns_datagram();
  d[5] += 1;
  EXPECT_EQ(error_of(d), ParseError::truncated);
  d[4] = d[5] = 0xff;
  EXPECT_EQ(error_of(d), ParseError::truncated);
}

TEST(Udp, PayloadTrimmedToLengthField) {
  auto d = dns_datagram();
  d.resize(d.size() + 6, 0);  // e.g. bytes the IP layer did not trim
  Bytes payload;
  ASSERT_TRUE(UdpRepr::parse(bytes_of(d), &payload).has_value());
  EXPECT_EQ(payload.size(), 29u);
  // Length exactly 8: empty payload.
  d[4] = 0;
  d[5] = 8;
  ASSERT_TRUE(UdpRepr::parse(bytes_of(d), &payload).has_value());
  EXPECT_TRUE(payload.empty());
}

TEST(Udp, EmitRejectsBadSizes) {
  std::vector<uint8_t> out(7, 0xaa);
  EXPECT_FALSE((UdpRepr{1, 2}.emit_v4(mut_bytes_of(out), kGuestIp, kDnsIp)));
  EXPECT_FALSE((UdpRepr{1, 2}.emit_v6(mut_bytes_of(out), kGuest6, kRemote6)));
  EXPECT_EQ(out, std::vector<uint8_t>(7, 0xaa));
  std::vector<uint8_t> big(65536, 0xaa);
  EXPECT_FALSE((UdpRepr{1, 2}.emit_v4(mut_bytes_of(big), kGuestIp, kDnsIp)));
  EXPECT_FALSE((UdpRepr{1, 2}.emit_v6(mut_bytes_of(big), kGuest6, kRemote6)));
  EXPECT_EQ(big[0], 0xaa);
  big.resize(65535);
  EXPECT_TRUE((UdpRepr{1, 2}.emit_v4(mut_bytes_of(big), kGuestIp, kDnsIp)));
}

}  // namespace
}  // namespace moat::wire
