#include "wire/ipv4.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"
#include "wire/checksum.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const Ipv4Addr kGuestIp = Ipv4Addr::from_octets(10, 0, 2, 15);
const Ipv4Addr kGatewayIp = Ipv4Addr::from_octets(10, 0, 2, 2);

/// The IPv4 packet of a frame (everything after the Ethernet header).
template <size_t N>
std::vector<uint8_t> packet_of(const std::array<uint8_t, N>& frame) {
  return vec(frame, kEthLen);
}

/// Recomputes the header checksum after a test edited the header.
void fix_checksum(std::vector<uint8_t>& p) {
  const size_t hl = size_t(p[0] & 0x0f) * 4;
  p[10] = p[11] = 0;
  const uint16_t c = internet_checksum(bytes_of(p).first(std::min(hl, p.size())));
  p[10] = uint8_t(c >> 8);
  p[11] = uint8_t(c);
}

/// A 20-byte header + `opts` (a multiple of 4) + `payload_len` zero bytes, checksum fixed.
std::vector<uint8_t> with_options(std::vector<uint8_t> opts, size_t payload_len = 4) {
  std::vector<uint8_t> p = vec(kIcmpEcho, kIpv4Off, 20);
  p.insert(p.end(), opts.begin(), opts.end());
  p.resize(p.size() + payload_len);
  p[0] = uint8_t(0x40 | (20 + opts.size()) / 4);
  p[2] = uint8_t(p.size() >> 8);
  p[3] = uint8_t(p.size());
  fix_checksum(p);
  return p;
}

ParseError error_of(const std::vector<uint8_t>& p) {
  auto r = Ipv4Repr::parse(bytes_of(p), nullptr);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TEST(Ipv4, DecodeIcmpEcho) {
  const auto p = packet_of(kIcmpEcho);
  Bytes payload;
  auto r = Ipv4Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->src, kGuestIp);
  EXPECT_EQ(r->dst, kGatewayIp);
  EXPECT_EQ(r->protocol, kProtoIcmp);
  EXPECT_EQ(r->ttl, 64);
  EXPECT_EQ(r->tos, 0);
  EXPECT_EQ(r->ident, 0x1c46);
  EXPECT_TRUE(r->dont_fragment);
  EXPECT_FALSE(r->more_fragments);
  EXPECT_EQ(r->frag_offset, 0);
  EXPECT_FALSE(r->is_fragment());
  EXPECT_EQ(r->payload_len, 32);
  EXPECT_EQ(r->header_len_bytes, 20);
  EXPECT_FALSE(r->source_route);
  EXPECT_EQ(vec(payload), vec(kIcmpEcho, kL4Off4));
}

TEST(Ipv4, DecodeKnownCaptureHeader) {
  // The header of checksum_test.cc (a kernel capture, checksum 0xb861), total length 115.
  std::vector<uint8_t> p{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                         0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  p.resize(115);
  auto r = Ipv4Repr::parse(bytes_of(p), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->protocol, kProtoUdp);
  EXPECT_EQ(r->src, Ipv4Addr::from_octets(192, 168, 0, 1));
  EXPECT_EQ(r->dst, Ipv4Addr::from_octets(192, 168, 0, 199));
  EXPECT_EQ(r->payload_len, 95);
}

TEST(Ipv4, TrailingEthernetPaddingIsIgnored) {
  auto p = packet_of(kIcmpEcho);
  p.resize(p.size() + 10, 0x5a);
  Bytes payload;
  auto r = Ipv4Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->payload_len, 32);
  EXPECT_EQ(vec(payload), vec(kIcmpEcho, kL4Off4));
}

TEST(Ipv4, EncodeByteExact) {
  Ipv4Repr r;
  r.src = kGuestIp;
  r.dst = kGatewayIp;
  r.protocol = kProtoIcmp;
  r.ident = 0x1c46;
  r.dont_fragment = true;
  r.payload_len = 32;
  std::vector<uint8_t> out(Ipv4Repr::kHeaderLen);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kIcmpEcho, kIpv4Off, 20));

  r.src = kGuestIp;
  r.dst = Ipv4Addr::from_octets(10, 0, 2, 3);
  r.protocol = kProtoUdp;
  r.ident = 0xbeef;
  r.payload_len = 37;
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kUdpDns, kIpv4Off, 20));
}

TEST(Ipv4, RoundTripFragmentFields) {
  Ipv4Repr r;
  r.src = Ipv4Addr::from_octets(192, 0, 2, 1);
  r.dst = kGuestIp;
  r.protocol = kProtoUdp;
  r.ttl = 1;
  r.tos = 0xb8;
  r.ident = 0xfffe;
  r.more_fragments = true;
  r.frag_offset = 1480;
  r.payload_len = 8;
  std::vector<uint8_t> out(Ipv4Repr::kHeaderLen + r.payload_len);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out[6], 0x20);  // MF, offset 185 (= 1480 / 8)
  EXPECT_EQ(out[7], 185);
  auto back = Ipv4Repr::parse(bytes_of(out), nullptr);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
  EXPECT_TRUE(back->is_fragment());

  r.more_fragments = false;
  r.frag_offset = 65528;  // largest offset: all 13 bits set
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  back = Ipv4Repr::parse(bytes_of(out), nullptr);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->frag_offset, 65528);
  EXPECT_TRUE(back->is_fragment());
}

TEST(Ipv4, EveryTruncatedPrefixFails) {
  for (const auto& p : {packet_of(kIcmpEcho), packet_of(kUdpDns), packet_of(kTcpSyn), packet_of(kIpv4RaOpt)}) {
    for (size_t n = 0; n < p.size(); ++n) {
      auto r = Ipv4Repr::parse(bytes_of(p).first(n), nullptr);
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error(), ParseError::truncated) << n;
    }
    EXPECT_TRUE(Ipv4Repr::parse(bytes_of(p), nullptr).has_value());
  }
}

TEST(Ipv4, TotalLengthBeyondBufferIsTruncated) {
  auto p = packet_of(kIcmpEcho);
  p[3] += 1;
  fix_checksum(p);
  EXPECT_EQ(error_of(p), ParseError::truncated);
  p[2] = p[3] = 0xff;
  fix_checksum(p);
  EXPECT_EQ(error_of(p), ParseError::truncated);
}

TEST(Ipv4, IhlBelowFiveIsBadLength) {
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    auto p = packet_of(kIcmpEcho);
    p[0] = uint8_t(0x40 | ihl);
    fix_checksum(p);
    EXPECT_EQ(error_of(p), ParseError::bad_length) << int(ihl);
  }
}

TEST(Ipv4, HeaderLongerThanTotalLengthIsBadLength) {
  // IHL 15 (60 bytes) but total length 52, in an 80-byte buffer.
  auto p = packet_of(kIcmpEcho);
  p.resize(80);
  p[0] = 0x4f;
  fix_checksum(p);  // total length still 52
  EXPECT_EQ(error_of(p), ParseError::bad_length);
  // Total length below 20 with IHL 5.
  p = packet_of(kIcmpEcho);
  p[2] = 0;
  p[3] = 19;
  fix_checksum(p);
  EXPECT_EQ(error_of(p), ParseError::bad_length);
}

TEST(Ipv4, HeaderOnlyPacketIsValid) {
  auto p = packet_of(kIcmpEcho);
  p[2] = 0;
  p[3] = 20;
  fix_checksum(p);
  Bytes payload = bytes_of(p);
  auto r = Ipv4Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->payload_len, 0);
  EXPECT_TRUE(payload.empty());
}

TEST(Ipv4, WrongVersion) {
  for (uint8_t v : {0, 6, 15}) {
    auto p = packet_of(kIcmpEcho);
    p[0] = uint8_t(v << 4 | 5);
    fix_checksum(p);
    EXPECT_EQ(error_of(p), ParseError::bad_version) << int(v);
  }
}

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
TEST(Ipv4, BadHeaderChecksumRejected) {
  for (size_t i = 0; i < 20; ++i) {
    if (i == 0 || i == 2 || i == 3) continue;  // those change a length check instead
    auto p = packet_of(kIcmpEcho);
    p[i] ^= 0x01;
    EXPECT_EQ(error_of(p), ParseError::bad_checksum) << i;
  }
  // The payload is not covered by the header checksum.
  auto p = packet_of(kIcmpEcho);
  p[30] ^= 0xff;
  EXPECT_TRUE(Ipv4Repr::parse(bytes_of(p), nullptr).has_value());
}

TEST(Ipv4, ChecksumCoversOptions) {
  auto p = packet_of(kIpv4RaOpt);
  p[22] ^= 0x01;  // Router Alert value
  EXPECT_EQ(error_of(p), ParseError::bad_checksum);
}
#endif

TEST(Ipv4, DecodeRouterAlertOption) {
  const auto p = packet_of(kIpv4RaOpt);
  Bytes payload;
  auto r = Ipv4Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header_len_bytes, 24);
  EXPECT_EQ(r->payload_len, 10);
  EXPECT_FALSE(r->dont_fragment);
  EXPECT_FALSE(r->source_route);
  EXPECT_EQ(r->protocol, kProtoUdp);
  EXPECT_EQ(vec(payload), vec(kIpv4RaOpt, kEthLen + 24));
}

TEST(Ipv4, SourceRouteOptionsAreFlagged) {
  // LSRR (131) / SSRR (137) with one address: type, len 7, pointer 4, address, then EOL.
  for (uint8_t type : {131, 137}) {
    auto p = with_options({type, 7, 4, 192, 0, 2, 1, 0});
    auto r = Ipv4Repr::parse(bytes_of(p), nullptr);
    ASSERT_TRUE(r.has_value()) << int(type);
    EXPECT_TRUE(r->source_route);
    EXPECT_EQ(r->header_len_bytes, 28);
  }
  // Behind NOPs and another option.
  auto p = with_options({1, 1, 0x94, 4, 0, 0, 131, 3, 4, 1, 1, 1});
  auto r = Ipv4Repr::parse(bytes_of(p), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->source_route);
  // Record route (7) is not a source route.
  p = with_options({7, 7, 4, 0, 0, 0, 0, 0});
  r = Ipv4Repr::parse(bytes_of(p), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->source_route);
}

TEST(Ipv4, OptionListEndsAtEol) {
  // Whatever follows EOL is padding, even if it looks like a bad option.
  auto p = with_options({0, 131, 0, 0xff});
  auto r = Ipv4Repr::parse(bytes_of(p), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->source_route);
  // 40 bytes of NOPs: the longest possible list.
  p = with_options(std::vector<uint8_t>(40, 1));
  r = Ipv4Repr::parse(bytes_of(p), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header_len_bytes, 60);
}

TEST(Ipv4, MalformedOptionsAreBadOption) {
  const std::vector<std::vector<uint8_t>> bad = {
      {0x94, 0, 0, 0},            // TLV length 0
      {0x94, 1, 0, 0},            // TLV length 1
      {0x94, 5, 0, 0},            // runs past the header by 1
      {0x94, 0xff, 0, 0},         // runs far past the header
      {1, 1, 1, 0x94},            // type in the last byte, no room for a length
      {1, 1, 131, 3},             // LSRR that runs past the header
      {7, 7, 4, 0, 0, 0, 0, 0x94},  // a good option, then a type without a length
  };
  for (const auto& opts : bad) {
    auto p = with_options(opts);
    EXPECT_EQ(error_of(p), ParseError::bad_option) << int(opts[0]) << " " << int(opts[1]);
  }
}

TEST(Ipv4, EmitRejectsBadPreconditions) {
  Ipv4Repr r;
  std::vector<uint8_t> out(19, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(19, 0xaa));
  out.assign(20, 0xaa);
  r.frag_offset = 100;  // not a multiple of 8
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  r.frag_offset = 0;
  r.payload_len = 65516;  // total length would overflow
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(20, 0xaa));
  r.payload_len = 65515;
  EXPECT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out[2], 0xff);
  EXPECT_EQ(out[3], 0xff);
}

}  // namespace
}  // namespace moat::wire
