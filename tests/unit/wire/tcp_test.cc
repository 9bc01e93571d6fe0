#include "wire/tcp.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

const Ipv4Addr kGuestIp = Ipv4Addr::from_octets(10, 0, 2, 15);
const Ipv4Addr kRemoteIp = Ipv4Addr::from_octets(93, 184, 216, 34);
const Ipv6Addr kGuest6{{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
const Ipv6Addr kRemote6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

std::vector<uint8_t> syn_segment() { return vec(kTcpSyn, kL4Off4); }
std::vector<uint8_t> v6_segment() { return vec(kIpv6Tcp, kL4Off6); }

/// A 20-byte header (ports 1 -> 2, ACK) + `opts` (padded with EOL to a multiple of 4) +
/// `payload_len` bytes. Checksum left zero: parse does not verify it.
std::vector<uint8_t> with_options(std::vector<uint8_t> opts, size_t payload_len = 0) {
  while (opts.size() % 4) opts.push_back(0);
  const std::array<uint8_t, 20> fixed{0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0x10, 0xff, 0xff, 0, 0, 0, 0};
  // Sized up front and filled by index: g++ 12 misreads vector::insert here (-Warray-bounds).
  std::vector<uint8_t> s(20 + opts.size() + payload_len, 0x61);
  for (size_t i = 0; i < fixed.size(); ++i) s[i] = fixed[i];
  for (size_t i = 0; i < opts.size(); ++i) s[20 + i] = opts[i];
  s[12] = uint8_t((20 + opts.size()) / 4 << 4);
  return s;
}

ParseError error_of(const std::vector<uint8_t>& s) {
  auto r = TcpRepr::parse(bytes_of(s), nullptr);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TcpRepr parse_ok(const std::vector<uint8_t>& s) {
  auto r = TcpRepr::parse(bytes_of(s), nullptr);
  EXPECT_TRUE(r.has_value()) << parse_error_name(r.error());
  return r.has_value() ? *r : TcpRepr{};
}

/// The SYN of the capture vector as a Repr.
TcpRepr syn_repr() {
  TcpRepr r;
  r.src_port = 51000;
  r.dst_port = 443;
  r.seq = SeqNum{0xfffffff0};
  r.flags = tcp_flags::syn;
  r.window = 64240;
  r.mss = 1460;
  r.sack_permitted = true;
  r.timestamps = std::pair<uint32_t, uint32_t>{0x0011aabb, 0};
  r.window_scale = 7;
  return r;
}

// --- SeqNum ---------------------------------------------------------------------------

TEST(SeqNum, ArithmeticWraps) {
  static_assert((SeqNum{0xfffffff0} + 0x20u).value == 0x10);
  static_assert((SeqNum{0x10} - 0x20u).value == 0xfffffff0);
  static_assert(SeqNum{0x10} - SeqNum{0xfffffff0} == 0x20);
  static_assert(SeqNum{0xfffffff0} - SeqNum{0x10} == -0x20);
  SeqNum s{0xffffffff};
  s += 1;
  EXPECT_EQ(s, SeqNum{0});
  s -= 2;
  EXPECT_EQ(s, SeqNum{0xfffffffe});
}

TEST(SeqNum, ComparisonsAreModular) {
  const SeqNum before{0xfffffff0}, after{0x10};
  EXPECT_TRUE(before < after);
  EXPECT_TRUE(before <= after);
  EXPECT_TRUE(after > before);
  EXPECT_TRUE(after >= before);
  EXPECT_FALSE(after < before);
  EXPECT_FALSE(before > after);
  EXPECT_TRUE(after <= after);
  EXPECT_TRUE(after >= after);
  EXPECT_FALSE(after < after);
  EXPECT_NE(before, after);
  EXPECT_EQ(seq_max(before, after), after);
  EXPECT_EQ(seq_min(before, after), before);
  // Without wrapping, the usual order.
  EXPECT_TRUE(SeqNum{1000} < SeqNum{2000});
  // Just under half the space apart still orders; the window edge is 2^31 - 1.
  EXPECT_TRUE(SeqNum{0} < SeqNum{0x7fffffff});
  EXPECT_TRUE(SeqNum{0x80000000} < SeqNum{0xffffffff});
  EXPECT_TRUE(SeqNum{0x7fffffff} < SeqNum{0x80000000});
  // Exactly 2^31 apart: a - b is INT32_MIN, so a < b; the order is not total there.
  EXPECT_TRUE(SeqNum{0} < SeqNum{0x80000000} || SeqNum{0x80000000} < SeqNum{0});
}

TEST(SeqNum, SweepAcrossTheWrap) {
  // Every pair (base + i, base + j) with |i - j| small compares like i and j.
  for (uint32_t base : {0u, 0x7ffffff0u, 0xfffffff0u}) {
    for (uint32_t i = 0; i < 40; ++i) {
      for (uint32_t j = 0; j < 40; ++j) {
        const SeqNum a = SeqNum{base} + i, b = SeqNum{base} + j;
        ASSERT_EQ(a < b, i < j) << base << " " << i << " " << j;
        ASSERT_EQ(a >= b, i >= j);
        ASSERT_EQ(a - b, int32_t(i) - int32_t(j));
      }
    }
  }
}

// --- decode / encode --------------------------------------------------------------------

TEST(Tcp, DecodeLinuxSyn) {
  const auto s = syn_segment();
  Bytes payload = bytes_of(s);
  auto r = TcpRepr::parse(bytes_of(s), &payload);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(*r, syn_repr());
  EXPECT_TRUE(r->has(tcp_flags::syn));
  EXPECT_FALSE(r->has(tcp_flags::ack));
  EXPECT_EQ(r->header_len(), 40u);
  EXPECT_TRUE(payload.empty());
}

TEST(Tcp, DecodeV6DataSegment) {
  const auto s = v6_segment();
  Bytes payload;
  auto r = TcpRepr::parse(bytes_of(s), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->src_port, 443);
  EXPECT_EQ(r->dst_port, 51000);
  EXPECT_EQ(r->seq, SeqNum{1000});
  EXPECT_EQ(r->ack, SeqNum{2000});
  EXPECT_EQ(r->flags, tcp_flags::psh | tcp_flags::ack);
  EXPECT_EQ(r->window, 502);
  EXPECT_EQ(r->urgent, 0);
  EXPECT_FALSE(r->mss.has_value());
  EXPECT_FALSE(r->window_scale.has_value());
  EXPECT_FALSE(r->sack_permitted);
  EXPECT_EQ(r->timestamps, (std::pair<uint32_t, uint32_t>{5, 6}));
  EXPECT_EQ(r->header_len(), 32u);
  EXPECT_EQ(vec(payload), (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}));
}

TEST(Tcp, EncodeLinuxSynByteExact) {
  const TcpRepr r = syn_repr();
  ASSERT_EQ(r.header_len(), 40u);
  std::vector<uint8_t> out(r.header_len(), 0xcc);
  ASSERT_TRUE(r.emit_v4(mut_bytes_of(out), kGuestIp, kRemoteIp));
  EXPECT_EQ(out, syn_segment());
}

TEST(Tcp, EncodeV6WithPayloadByteExact) {
  TcpRepr r;
  r.src_port = 443;
  r.dst_port = 51000;
  r.seq = SeqNum{1000};
  r.ack = SeqNum{2000};
  r.flags = tcp_flags::psh | tcp_flags::ack;
  r.window = 502;
  r.timestamps = std::pair<uint32_t, uint32_t>{5, 6};
  auto out = v6_segment();
  std::fill(out.begin(), out.begin() + 32, 0);  // the payload is already in place
  ASSERT_TRUE(r.emit_v6(mut_bytes_of(out), kRemote6, kGuest6));
  EXPECT_EQ(out, v6_segment());
}

TEST(Tcp, EncodeMoatSynAckOptions) {
  // moat's own SYN-ACK offers MSS and window scale only (SPEC R-TCP-2).
  TcpRepr r;
  r.flags = tcp_flags::syn | tcp_flags::ack;
  r.mss = 1460;
  r.window_scale = 8;
  ASSERT_EQ(r.header_len(), 28u);
  std::vector<uint8_t> out(r.header_len());
  ASSERT_TRUE(r.emit_v4(mut_bytes_of(out), kRemoteIp, kGuestIp));
  EXPECT_EQ(out[12], 0x70);  // data offset 7
  EXPECT_EQ((std::vector<uint8_t>(out.begin() + 20, out.end())),
            (std::vector<uint8_t>{0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x08}));
  Checksum c = pseudo_header_v4(kRemoteIp, kGuestIp, kProtoTcp, uint16_t(out.size()));
  c.add(bytes_of(out));
  EXPECT_EQ(c.finish(), 0);
}

TEST(Tcp, SackPermittedWithoutTimestamps) {
  TcpRepr r;
  r.sack_permitted = true;
  ASSERT_EQ(r.header_len(), 24u);
  std::vector<uint8_t> out(r.header_len());
  ASSERT_TRUE(r.emit_v4(mut_bytes_of(out), kRemoteIp, kGuestIp));
  EXPECT_EQ((std::vector<uint8_t>(out.begin() + 20, out.end())), (std::vector<uint8_t>{1, 1, 4, 2}));
}

TEST(Tcp, RoundTripEveryOptionCombination) {
  for (int mask = 0; mask < 16; ++mask) {
    TcpRepr r;
    r.src_port = 0xffff;
    r.dst_port = 1;
    r.seq = SeqNum{0x80000000};
    r.ack = SeqNum{0xffffffff};
    r.flags = 0xff;
    r.window = 0x1234;
    r.urgent = 0x5678;
    if (mask & 1) r.mss = 65495;
    if (mask & 2) r.window_scale = 14;
    if (mask & 4) r.sack_permitted = true;
    if (mask & 8) r.timestamps = std::pair<uint32_t, uint32_t>{0xffffffff, 0x01020304};
    const size_t payload_len = size_t(mask) * 3;
    std::vector<uint8_t> out(r.header_len() + payload_len, 0x5a);
    ASSERT_EQ(r.header_len() % 4, 0u);
    ASSERT_TRUE(r.emit_v6(mut_bytes_of(out), kGuest6, kRemote6)) << mask;
    Bytes payload;
    auto back = TcpRepr::parse(bytes_of(out), &payload);
    ASSERT_TRUE(back.has_value()) << mask;
    EXPECT_EQ(*back, r) << mask;
    EXPECT_EQ(back->header_len(), r.header_len());
    EXPECT_EQ(payload.size(), payload_len);
    Checksum c = pseudo_header_v6(kGuest6, kRemote6, kProtoTcp, uint32_t(out.size()));
    c.add(bytes_of(out));
    EXPECT_EQ(c.finish(), 0) << mask;
  }
}

TEST(Tcp, ChecksumIsNotVerified) {
  auto s = syn_segment();
  s[16] ^= 0xff;  // SPEC R-NET-3
  EXPECT_TRUE(TcpRepr::parse(bytes_of(s), nullptr).has_value());
}

// --- malformed input --------------------------------------------------------------------

TEST(Tcp, EveryTruncatedPrefixFails) {
  for (const auto& s : {syn_segment(), v6_segment()}) {
    const size_t hl = size_t(s[12] >> 4) * 4;
    for (size_t n = 0; n < hl; ++n) {
      auto r = TcpRepr::parse(bytes_of(s).first(n), nullptr);
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error(), ParseError::truncated) << n;
    }
    // From the end of the header on, a shorter segment is just a shorter payload.
    for (size_t n = hl; n <= s.size(); ++n) {
      Bytes payload;
      ASSERT_TRUE(TcpRepr::parse(bytes_of(s).first(n), &payload).has_value()) << n;
      EXPECT_EQ(payload.size(), n - hl);
    }
  }
}

TEST(Tcp, DataOffsetBelowFiveIsBadLength) {
  for (uint8_t off = 0; off < 5; ++off) {
    auto s = syn_segment();
    s[12] = uint8_t(off << 4);
    EXPECT_EQ(error_of(s), ParseError::bad_length) << int(off);
  }
}

TEST(Tcp, DataOffsetBeyondSegmentIsTruncated) {
  auto s = with_options({}, 0);
  s[12] = 0x60;  // 24 bytes, 20 present
  EXPECT_EQ(error_of(s), ParseError::truncated);
  s[12] = 0xf0;
  s.resize(59);
  EXPECT_EQ(error_of(s), ParseError::truncated);
  s.resize(60);
  EXPECT_TRUE(TcpRepr::parse(bytes_of(s), nullptr).has_value());  // 40 bytes of EOL
}

TEST(Tcp, MalformedOptionsAreBadOption) {
  const std::vector<std::vector<uint8_t>> bad = {
      {2, 0, 5, 0xb4},               // length 0
      {2, 1, 5, 0xb4},               // length 1
      {2, 5, 5, 0xb4},               // MSS runs past the header by 1
      {8, 10, 0, 0, 0, 1, 0, 0},     // timestamps cut short by the header end
      {1, 1, 1, 2},                  // kind in the last byte, no length
      {254, 0xff, 0, 0},             // unknown kind, length far past the header
  };
  for (const auto& opts : bad) {
    const auto s = with_options(opts, 10);  // payload bytes do not count as header
    EXPECT_EQ(error_of(s), ParseError::bad_option) << int(opts[0]) << " " << int(opts[1]);
  }
}

TEST(Tcp, OptionsEndAtEol) {
  // EOL, then bytes that would be a malformed option: ignored.
  auto r = parse_ok(with_options({2, 4, 5, 0xb4, 0, 2, 0, 0}));
  EXPECT_EQ(r.mss, 1460);
}

TEST(Tcp, WrongLengthForKnownKindIsIgnored) {
  // MSS with length 3, WS with length 4, SACK-perm with length 3, TS with length 8.
  auto r = parse_ok(with_options({2, 3, 5, 3, 4, 0, 0, 4, 3, 1, 1, 1, 8, 8, 0, 0, 0, 1, 0, 0, 0, 2}));
  EXPECT_FALSE(r.mss.has_value());
  EXPECT_FALSE(r.window_scale.has_value());
  EXPECT_FALSE(r.sack_permitted);
  EXPECT_FALSE(r.timestamps.has_value());
}

TEST(Tcp, UnknownAndSackBlockOptionsAreIgnored) {
  // MD5 signature (19, len 18), a SACK block (5, len 10), then MSS.
  std::vector<uint8_t> opts{19, 18};
  opts.resize(18, 0xab);
  const std::vector<uint8_t> sack{5, 10, 0, 0, 0, 1, 0, 0, 0, 9, 2, 4, 0x23, 0x28};
  opts.insert(opts.end(), sack.begin(), sack.end());
  auto r = parse_ok(with_options(opts));
  EXPECT_EQ(r.mss, 9000);
  EXPECT_FALSE(r.sack_permitted);
}

TEST(Tcp, WindowScaleAbove14IsClamped) {
  // RFC 7323 §2.3.
  EXPECT_EQ(parse_ok(with_options({3, 3, 15})).window_scale, 14);
  EXPECT_EQ(parse_ok(with_options({3, 3, 255})).window_scale, 14);
  EXPECT_EQ(parse_ok(with_options({3, 3, 14})).window_scale, 14);
  EXPECT_EQ(parse_ok(with_options({3, 3, 0})).window_scale, 0);
}

TEST(Tcp, FirstOfDuplicateOptionsWins) {
  auto r = parse_ok(with_options({2, 4, 0x05, 0xb4, 2, 4, 0x00, 0x40}));
  EXPECT_EQ(r.mss, 1460);
}

TEST(Tcp, FortyBytesOfNops) {
  const auto s = with_options(std::vector<uint8_t>(40, 1), 3);
  Bytes payload;
  auto r = TcpRepr::parse(bytes_of(s), &payload);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->mss.has_value());
  EXPECT_EQ(payload.size(), 3u);
}

TEST(Tcp, EmitRejectsShortBuffer) {
  const TcpRepr r = syn_repr();
  std::vector<uint8_t> out(r.header_len() - 1, 0xaa);
  EXPECT_FALSE(r.emit_v4(mut_bytes_of(out), kGuestIp, kRemoteIp));
  EXPECT_FALSE(r.emit_v6(mut_bytes_of(out), kGuest6, kRemote6));
  EXPECT_EQ(out, std::vector<uint8_t>(r.header_len() - 1, 0xaa));
  std::vector<uint8_t> big(65536, 0xaa);
  EXPECT_FALSE(r.emit_v4(mut_bytes_of(big), kGuestIp, kRemoteIp));
  EXPECT_EQ(big[0], 0xaa);
  EXPECT_TRUE(r.emit_v6(mut_bytes_of(big), kGuest6, kRemote6));
}

}  // namespace
}  // namespace moat::wire
