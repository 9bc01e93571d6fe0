#include "wire/ipv6.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const Ipv6Addr kGuest6{{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
const Ipv6Addr kRemote6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

template <size_t N>
std::vector<uint8_t> packet_of(const std::array<uint8_t, N>& frame) {
  return vec(frame, kEthLen);
}

/// A packet whose payload is `exts` (extension headers, `first` is the fixed header's next
/// header) followed by `upper` bytes of upper-layer data.
std::vector<uint8_t> with_exts(uint8_t first, const std::vector<uint8_t>& exts, size_t upper = 8) {
  std::vector<uint8_t> p = vec(kIpv6Tcp, kEthLen, Ipv6Repr::kHeaderLen);
  p.insert(p.end(), exts.begin(), exts.end());
  p.resize(p.size() + upper, 0x77);
  const size_t pl = p.size() - Ipv6Repr::kHeaderLen;
  p[4] = uint8_t(pl >> 8);
  p[5] = uint8_t(pl);
  p[6] = first;
  return p;
}

/// An 8-byte options header (hop-by-hop or destination options) holding one PadN.
std::vector<uint8_t> opts_header(uint8_t next) { return {next, 0, 1, 4, 0, 0, 0, 0}; }

ParseError error_of(const std::vector<uint8_t>& p) {
  auto r = Ipv6Repr::parse(bytes_of(p), nullptr);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TEST(Ipv6, DecodeTcp) {
  const auto p = packet_of(kIpv6Tcp);
  Bytes payload;
  auto r = Ipv6Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->src, kRemote6);
  EXPECT_EQ(r->dst, kGuest6);
  EXPECT_EQ(r->next_header, kProtoTcp);
  EXPECT_EQ(r->hop_limit, 64);
  EXPECT_EQ(r->traffic_class, 0xb8);
  EXPECT_EQ(r->flow_label, 0x12345u);
  EXPECT_EQ(r->payload_len, 37u);
  EXPECT_EQ(r->ext_headers_len, 0);
  EXPECT_FALSE(r->fragment.has_value());
  EXPECT_EQ(vec(payload), vec(kIpv6Tcp, kL4Off6));
}

TEST(Ipv6, DecodeHopByHopAndFirstFragment) {
  const auto p = packet_of(kIpv6HbhFragUdp);
  Bytes payload;
  auto r = Ipv6Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->src, kGuest6);
  EXPECT_EQ(r->dst, kRemote6);
  EXPECT_EQ(r->next_header, kProtoUdp);
  EXPECT_EQ(r->ext_headers_len, 16);
  EXPECT_EQ(r->payload_len, 14u);
  ASSERT_TRUE(r->fragment.has_value());
  EXPECT_EQ(*r->fragment, (Ipv6FragmentInfo{0, true, 0xdeadbeef, kProtoUdp}));
  EXPECT_EQ(vec(payload), vec(kIpv6HbhFragUdp, kL4Off6 + 16));
  // The UDP checksum of the vector is right: pseudo-header + datagram verify to zero.
  Checksum c = pseudo_header_v6(r->src, r->dst, kProtoUdp, uint32_t(payload.size()));
  c.add(payload);
  EXPECT_EQ(c.finish(), 0);
}

TEST(Ipv6, TrailingBytesAreIgnored) {
  auto p = packet_of(kIpv6Tcp);
  p.resize(p.size() + 7, 0xee);
  Bytes payload;
  auto r = Ipv6Repr::parse(bytes_of(p), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(vec(payload), vec(kIpv6Tcp, kL4Off6));
}

TEST(Ipv6, EncodeByteExact) {
  Ipv6Repr r;
  r.src = kRemote6;
  r.dst = kGuest6;
  r.next_header = kProtoTcp;
  r.traffic_class = 0xb8;
  r.flow_label = 0x12345;
  r.payload_len = 37;
  std::vector<uint8_t> out(Ipv6Repr::kHeaderLen);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kIpv6Tcp, kEthLen, Ipv6Repr::kHeaderLen));
}

TEST(Ipv6, RoundTrip) {
  Ipv6Repr r;
  r.src = kGuest6;
  r.dst = Ipv6Addr::all_nodes();
  r.next_header = kProtoIcmpv6;
  r.hop_limit = 255;
  r.traffic_class = 0xff;
  r.flow_label = 0xfffff;
  r.payload_len = 24;
  std::vector<uint8_t> out(Ipv6Repr::kHeaderLen + r.payload_len);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  auto back = Ipv6Repr::parse(bytes_of(out), nullptr);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(Ipv6, FragmentHeaderEncodeByteExactAndRoundTrip) {
  const Ipv6FragmentHeader f{kProtoUdp, 1480, true, 0xdeadbeef};
  std::vector<uint8_t> out(Ipv6FragmentHeader::kLen);
  ASSERT_TRUE(f.emit(mut_bytes_of(out)));
  // 1480 / 8 = 185 = 0x0b9 -> 0x05c8 in the top 13 bits, | M.
  EXPECT_EQ(out, (std::vector<uint8_t>{0x11, 0x00, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef}));
  // The first-fragment header of the capture vector, byte for byte.
  const Ipv6FragmentHeader first{kProtoUdp, 0, true, 0xdeadbeef};
  ASSERT_TRUE(first.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, vec(kIpv6HbhFragUdp, kL4Off6 + 8, 8));

  // Behind an emitted fixed header, it parses back as the same fragment.
  Ipv6Repr r;
  r.src = kGuest6;
  r.dst = kRemote6;
  r.next_header = kNextFragment;
  r.payload_len = 8 + 16;
  std::vector<uint8_t> pkt(Ipv6Repr::kHeaderLen + r.payload_len);
  ASSERT_TRUE(r.emit(mut_bytes_of(pkt)));
  ASSERT_TRUE(f.emit(mut_bytes_of(pkt).subspan(Ipv6Repr::kHeaderLen)));
  Bytes payload;
  auto back = Ipv6Repr::parse(bytes_of(pkt), &payload);
  ASSERT_TRUE(back.has_value());
  ASSERT_TRUE(back->fragment.has_value());
  EXPECT_EQ(*back->fragment, (Ipv6FragmentInfo{1480, true, 0xdeadbeef, kProtoUdp}));
  EXPECT_EQ(back->next_header, kProtoUdp);
  EXPECT_EQ(payload.size(), 16u);
}

TEST(Ipv6, EveryTruncatedPrefixFails) {
  for (const auto& p : {packet_of(kIpv6Tcp), packet_of(kIpv6HbhFragUdp)}) {
    for (size_t n = 0; n < p.size(); ++n) {
      auto r = Ipv6Repr::parse(bytes_of(p).first(n), nullptr);
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error(), ParseError::truncated) << n;
    }
    EXPECT_TRUE(Ipv6Repr::parse(bytes_of(p), nullptr).has_value());
  }
}

TEST(Ipv6, PayloadLengthBeyondBufferIsTruncated) {
  auto p = packet_of(kIpv6Tcp);
  p[5] += 1;
  EXPECT_EQ(error_of(p), ParseError::truncated);
  p[4] = p[5] = 0xff;
  EXPECT_EQ(error_of(p), ParseError::truncated);
}

TEST(Ipv6, WrongVersion) {
  for (uint8_t v : {0, 4, 15}) {
    auto p = packet_of(kIpv6Tcp);
    p[0] = uint8_t(v << 4 | (p[0] & 0x0f));
    EXPECT_EQ(error_of(p), ParseError::bad_version) << int(v);
  }
}

TEST(Ipv6, ExtensionHeaderRunningPastThePayload) {
  // Hdr Ext Len 1 says 16 bytes, but only 8 + 0 remain.
  EXPECT_EQ(error_of(with_exts(kNextDestOpts, {kProtoUdp, 1, 1, 4, 0, 0, 0, 0}, 0)), ParseError::truncated);
  // Hdr Ext Len 255 (2048 bytes).
  EXPECT_EQ(error_of(with_exts(kNextHopByHop, {kProtoUdp, 255, 1, 4, 0, 0, 0, 0}, 100)), ParseError::truncated);
  // Fewer than 8 bytes left for the next extension header.
  EXPECT_EQ(error_of(with_exts(kNextDestOpts, {kNextFragment, 0, 1, 4, 0, 0, 0, 0}, 7)), ParseError::truncated);
  // The header lies inside the buffer but beyond the payload length (trailing bytes).
  auto p = with_exts(kNextDestOpts, {kProtoUdp, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0);
  p[5] -= 8;
  EXPECT_EQ(error_of(p), ParseError::truncated);
}

TEST(Ipv6, EightExtensionHeadersAreWalkedNineAreNot) {
  std::vector<uint8_t> exts = opts_header(kNextDestOpts);  // hop-by-hop first
  for (int i = 0; i < 6; ++i) {
    auto h = opts_header(kNextDestOpts);
    exts.insert(exts.end(), h.begin(), h.end());
  }
  auto last = opts_header(kProtoUdp);
  auto eight = exts;
  eight.insert(eight.end(), last.begin(), last.end());
  Bytes payload;
  const auto pkt = with_exts(kNextHopByHop, eight, 8);
  auto r = Ipv6Repr::parse(bytes_of(pkt), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->next_header, kProtoUdp);
  EXPECT_EQ(r->ext_headers_len, 64);
  EXPECT_EQ(r->payload_len, 8u);
  EXPECT_EQ(payload.size(), 8u);

  auto nine = exts;
  auto h = opts_header(kNextDestOpts);
  nine.insert(nine.end(), h.begin(), h.end());
  nine.insert(nine.end(), last.begin(), last.end());
  EXPECT_EQ(error_of(with_exts(kNextHopByHop, nine, 8)), ParseError::too_many_ext_headers);
}

TEST(Ipv6, ManyChainedHeadersStopAtNine) {
  // 200 destination-options headers: the walk gives up after 8, well before the end.
  std::vector<uint8_t> exts;
  for (int i = 0; i < 200; ++i) {
    auto h = opts_header(kNextDestOpts);
    exts.insert(exts.end(), h.begin(), h.end());
  }
  EXPECT_EQ(error_of(with_exts(kNextDestOpts, exts, 0)), ParseError::too_many_ext_headers);
}

TEST(Ipv6, RoutingHeader) {
  // Any routing type: segments left 0 is skipped (RFC 8200 §4.4), > 0 is refused.
  const std::vector<uint8_t> rh0{kProtoTcp, 2, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
                                 9, 10, 11, 12, 13, 14, 15, 16};
  Bytes payload;
  const auto pkt = with_exts(kNextRouting, rh0, 20);
  auto r = Ipv6Repr::parse(bytes_of(pkt), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->next_header, kProtoTcp);
  EXPECT_EQ(r->ext_headers_len, 24);
  EXPECT_EQ(payload.size(), 20u);
  for (uint8_t left : {1, 2, 255}) {
    auto rh = rh0;
    rh[3] = left;
    EXPECT_EQ(error_of(with_exts(kNextRouting, rh, 20)), ParseError::routing_header) << int(left);
  }
  // Also when it is not the first extension header.
  auto rh = rh0;
  rh[3] = 1;
  auto exts = opts_header(kNextRouting);
  exts.insert(exts.end(), rh.begin(), rh.end());
  EXPECT_EQ(error_of(with_exts(kNextHopByHop, exts, 20)), ParseError::routing_header);
}

TEST(Ipv6, NonFirstFragmentStopsTheWalk) {
  // Offset 8: the bytes after the fragment header are data, even if they look like an
  // extension header with a huge length.
  const std::vector<uint8_t> frag{kNextDestOpts, 0, 0x00, 0x08, 0, 0, 0, 42};
  const std::vector<uint8_t> data{kProtoUdp, 255, 0, 0, 0, 0, 0, 0};
  auto exts = frag;
  exts.insert(exts.end(), data.begin(), data.end());
  Bytes payload;
  const auto pkt = with_exts(kNextFragment, exts, 0);
  auto r = Ipv6Repr::parse(bytes_of(pkt), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  ASSERT_TRUE(r->fragment.has_value());
  EXPECT_EQ(*r->fragment, (Ipv6FragmentInfo{8, false, 42, kNextDestOpts}));
  EXPECT_EQ(r->next_header, kNextDestOpts);
  EXPECT_EQ(r->ext_headers_len, 8);
  EXPECT_EQ(vec(payload), data);
}

TEST(Ipv6, AtomicFragmentContinuesTheWalk) {
  // Offset 0, M 0 (RFC 6946): the walk goes on to the upper layer.
  const std::vector<uint8_t> frag{kProtoTcp, 0, 0, 0, 0, 0, 0, 1};
  auto r = Ipv6Repr::parse(bytes_of(with_exts(kNextFragment, frag, 20)), nullptr);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->fragment.has_value());
  EXPECT_FALSE(r->fragment->more);
  EXPECT_EQ(r->next_header, kProtoTcp);
  EXPECT_EQ(r->payload_len, 20u);
}

TEST(Ipv6, SecondFragmentHeaderIsUnsupported) {
  std::vector<uint8_t> exts{kNextFragment, 0, 0, 1, 0, 0, 0, 1, kProtoUdp, 0, 0, 1, 0, 0, 0, 2};
  EXPECT_EQ(error_of(with_exts(kNextFragment, exts, 8)), ParseError::unsupported);
}

TEST(Ipv6, HopByHopOnlyFirst) {
  // RFC 8200 §4.1: hop-by-hop anywhere else ends the walk as an unknown header would.
  auto exts = opts_header(kNextHopByHop);
  auto hbh = opts_header(kProtoUdp);
  exts.insert(exts.end(), hbh.begin(), hbh.end());
  Bytes payload;
  const auto pkt = with_exts(kNextDestOpts, exts, 8);
  auto r = Ipv6Repr::parse(bytes_of(pkt), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->next_header, kNextHopByHop);
  EXPECT_EQ(r->ext_headers_len, 8);
  EXPECT_EQ(payload.size(), 16u);
}

TEST(Ipv6, NoNextHeaderAndUnknownEndTheWalk) {
  for (uint8_t nh : {kNextNone, uint8_t(50) /* ESP */, uint8_t(135) /* mobility */, uint8_t(253)}) {
    Bytes payload;
    const auto pkt = with_exts(kNextDestOpts, opts_header(nh), 12);
    auto r = Ipv6Repr::parse(bytes_of(pkt), &payload);
    ASSERT_TRUE(r.has_value()) << int(nh);
    EXPECT_EQ(r->next_header, nh);
    EXPECT_EQ(r->ext_headers_len, 8);
    EXPECT_EQ(payload.size(), 12u);
  }
}

TEST(Ipv6, EmptyPayloadWithExtensionHeaderIsTruncated) {
  // Payload length 0 (not a jumbogram: moat has no jumbo support) with a hop-by-hop header.
  EXPECT_EQ(error_of(with_exts(kNextHopByHop, {}, 0)), ParseError::truncated);
  auto r = Ipv6Repr::parse(bytes_of(with_exts(kNextNone, {}, 0)), nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->payload_len, 0u);
}

TEST(Ipv6, EmitRejectsBadPreconditions) {
  Ipv6Repr r;
  std::vector<uint8_t> out(39, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(39, 0xaa));
  out.assign(40, 0xaa);
  r.payload_len = 65536;
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  r.payload_len = 0;
  r.flow_label = 0x100000;
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(40, 0xaa));

  std::vector<uint8_t> f(7, 0xaa);
  EXPECT_FALSE((Ipv6FragmentHeader{kProtoUdp, 8, false, 1}.emit(mut_bytes_of(f))));
  f.assign(8, 0xaa);
  EXPECT_FALSE((Ipv6FragmentHeader{kProtoUdp, 9, false, 1}.emit(mut_bytes_of(f))));
  EXPECT_EQ(f, std::vector<uint8_t>(8, 0xaa));
}

}  // namespace
}  // namespace moat::wire
