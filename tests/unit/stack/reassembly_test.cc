// Reassembler (R-FRAG-1): in-order, out-of-order, overlap and duplicate rules (RFC 5722),
// tiny first fragments (RFC 7112), conflicting lengths, timeout, eviction and limits.
#include "stack/reassembly.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/udp.h"

namespace moat::stack {
namespace {

using Buf = std::vector<std::byte>;
constexpr Instant kT0{std::chrono::hours(1)};

Buf pattern(size_t n, uint8_t seed = 1) {
  Buf b(n);
  for (size_t i = 0; i < n; ++i) b[i] = std::byte(uint8_t(seed + i * 7));
  return b;
}

Bytes sub(const Buf& b, size_t off, size_t len) { return Bytes(b.data() + off, len); }

wire::Ipv4Repr frag4(uint16_t offset, bool more, uint16_t ident = 0x1234, uint8_t proto = wire::kProtoUdp) {
  wire::Ipv4Repr ip;
  ip.src = Ipv4Addr::from_octets(100, 96, 0, 2);
  ip.dst = Ipv4Addr::from_octets(192, 0, 2, 1);
  ip.protocol = proto;
  ip.ident = ident;
  ip.frag_offset = offset;
  ip.more_fragments = more;
  return ip;
}

/// An IPv6 packet with a Fragment header (and optional dest-options header after it in the
/// first fragment), parsed back with the production parser.
struct V6Frag {
  Buf packet;
  wire::Ipv6Repr ip;
};
V6Frag frag6(uint16_t offset, bool more, Bytes data, uint32_t ident = 0xabcd, uint8_t next = wire::kProtoUdp) {
  V6Frag f;
  wire::Ipv6Repr ip;
  ip.src = *Ipv6Addr::parse("fd00::2");
  ip.dst = *Ipv6Addr::parse("2001:db8::1");
  ip.next_header = wire::kNextFragment;
  ip.payload_len = uint32_t(8 + data.size());
  f.packet.resize(40 + 8 + data.size());
  EXPECT_TRUE(ip.emit(MutBytes(f.packet)));
  wire::Ipv6FragmentHeader fh{next, offset, more, ident};
  EXPECT_TRUE(fh.emit(MutBytes(f.packet).subspan(40, 8)));
  if (!data.empty()) std::memcpy(f.packet.data() + 48, data.data(), data.size());
  auto parsed = wire::Ipv6Repr::parse(Bytes(f.packet), nullptr);
  EXPECT_TRUE(parsed.has_value());
  if (parsed) f.ip = *parsed;
  return f;
}

class ReassemblyTest : public ::testing::Test {
 protected:
  Counters counters;
  ReassemblyConfig cfg;
};

TEST_F(ReassemblyTest, V4InOrder) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(3000);
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 1480), kT0));
  EXPECT_FALSE(r.add_v4(frag4(1480, true), sub(d, 1480, 1480), kT0));
  EXPECT_EQ(r.in_progress(), 1u);
  auto out = r.add_v4(frag4(2960, false), sub(d, 2960, 40), kT0);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->l4.size(), 3000u);
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), d.size()), 0);
  EXPECT_FALSE(out->ip.is_fragment());
  EXPECT_EQ(out->ip.payload_len, 3000);
  EXPECT_EQ(out->ip.protocol, wire::kProtoUdp);
  EXPECT_EQ(out->ip.src, Ipv4Addr::from_octets(100, 96, 0, 2));
  EXPECT_EQ(counters.get(Counter::frag_reassembled), 1u);
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(r.bytes_held(), 0u);
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(ReassemblyTest, V4OutOfOrder) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(2000, 9);
  EXPECT_FALSE(r.add_v4(frag4(1600, false), sub(d, 1600, 400), kT0));
  EXPECT_FALSE(r.add_v4(frag4(800, true), sub(d, 800, 800), kT0));
  auto out = r.add_v4(frag4(0, true), sub(d, 0, 800), kT0);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->l4.size(), 2000u);
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), d.size()), 0);
}

TEST_F(ReassemblyTest, NonFragmentPassesThrough) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(100);
  auto out = r.add_v4(frag4(0, false), Bytes(d), kT0);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->l4.data(), d.data());
  EXPECT_EQ(r.in_progress(), 0u);
}

TEST_F(ReassemblyTest, OverlapDiscardsWholeDatagram) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(2000);
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 808), kT0));
  // Starts inside the first fragment: RFC 5722 overlap.
  EXPECT_FALSE(r.add_v4(frag4(800, false), sub(d, 800, 1200), kT0));
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
  EXPECT_EQ(counters.dropped(DropReason::fragment_invalid), 1u);
  // A later correct fragment starts a fresh datagram that never completes from it alone.
  EXPECT_FALSE(r.add_v4(frag4(808, false), sub(d, 808, 1192), kT0));
  EXPECT_EQ(r.in_progress(), 1u);
}

TEST_F(ReassemblyTest, IdenticalDuplicateAccepted) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 800), kT0));
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 800), kT0));
  EXPECT_EQ(r.in_progress(), 1u);
  auto out = r.add_v4(frag4(800, false), sub(d, 800, 800), kT0);
  ASSERT_TRUE(out);
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), d.size()), 0);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 0u);
}

TEST_F(ReassemblyTest, DifferingDuplicateDiscards) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  Buf evil(d.begin(), d.begin() + 800);
  evil[100] ^= std::byte{0xff};
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 800), kT0));
  EXPECT_FALSE(r.add_v4(frag4(0, true), Bytes(evil), kT0));
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
}

TEST_F(ReassemblyTest, NonFinalMustBeMultipleOf8) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1000);
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 801), kT0));
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
}

TEST_F(ReassemblyTest, ConflictingTotalLengthsDiscard) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(2000);
  EXPECT_FALSE(r.add_v4(frag4(800, false), sub(d, 800, 400), kT0));   // total 1200
  EXPECT_FALSE(r.add_v4(frag4(1600, false), sub(d, 1600, 400), kT0));  // total 2000: conflict
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);

  // A non-final fragment past a known end is a conflict too.
  EXPECT_FALSE(r.add_v4(frag4(800, false, 7), sub(d, 800, 400), kT0));
  EXPECT_FALSE(r.add_v4(frag4(1200, true, 7), sub(d, 1200, 400), kT0));
  EXPECT_EQ(counters.get(Counter::frag_invalid), 2u);
  // And a final fragment ending before data already held.
  EXPECT_FALSE(r.add_v4(frag4(1600, true, 8), sub(d, 1600, 400), kT0));
  EXPECT_FALSE(r.add_v4(frag4(800, false, 8), sub(d, 800, 400), kT0));
  EXPECT_EQ(counters.get(Counter::frag_invalid), 3u);
  EXPECT_EQ(r.in_progress(), 0u);
}

TEST_F(ReassemblyTest, TinyFirstFragmentRejected) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(64);
  // 16 bytes cannot hold a 20-byte TCP header (RFC 1858 §3).
  EXPECT_FALSE(r.add_v4(frag4(0, true, 2, wire::kProtoTcp), sub(d, 0, 16), kT0));
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
  EXPECT_EQ(r.in_progress(), 0u);
  // A later fragment of the same datagram cannot complete it without a first fragment.
  EXPECT_FALSE(r.add_v4(frag4(16, false, 2, wire::kProtoTcp), sub(d, 16, 48), kT0));
  EXPECT_EQ(r.in_progress(), 1u);
}

TEST_F(ReassemblyTest, OversizeRejected) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1000);
  // Offset 65000 + 1000 bytes > 65515 (RFC 791 total length).
  EXPECT_FALSE(r.add_v4(frag4(65000, false), sub(d, 0, 1000), kT0));
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
  EXPECT_EQ(r.in_progress(), 0u);
}

TEST_F(ReassemblyTest, MaximumSizeDatagram) {
  Reassembler r(cfg, counters);
  const size_t total = 65515;
  const Buf d = pattern(total);
  std::optional<ReassembledV4> out;
  for (size_t off = 0; off < total; off += 1480) {
    const size_t len = std::min<size_t>(1480, total - off);
    out = r.add_v4(frag4(uint16_t(off), off + len < total), sub(d, off, len), kT0);
  }
  ASSERT_TRUE(out);
  ASSERT_EQ(out->l4.size(), total);
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), total), 0);
}

TEST_F(ReassemblyTest, Timeout) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  EXPECT_FALSE(r.add_v4(frag4(0, true), sub(d, 0, 800), kT0));
  ASSERT_TRUE(r.next_deadline());
  EXPECT_EQ(*r.next_deadline(), kT0 + 10s);
  r.expire(kT0 + 9s);
  EXPECT_EQ(r.in_progress(), 1u);
  r.expire(kT0 + 10s);
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_timeout), 1u);
  EXPECT_FALSE(r.next_deadline());
  // A fragment arriving after the lifetime but before expire() ran does not revive it.
  EXPECT_FALSE(r.add_v4(frag4(0, true, 9), sub(d, 0, 800), kT0));
  EXPECT_FALSE(r.add_v4(frag4(800, false, 9), sub(d, 800, 800), kT0 + 10s));
  EXPECT_EQ(counters.get(Counter::frag_timeout), 2u);
  EXPECT_EQ(r.in_progress(), 1u);  // the late tail starts a new (incomplete) datagram
  r.expire(kT0 + 30s);
  // The late second half alone does not complete anything.
  EXPECT_FALSE(r.add_v4(frag4(800, false), sub(d, 800, 800), kT0 + 11s));
}

TEST_F(ReassemblyTest, OldestEvictedAtDatagramLimit) {
  cfg.max_datagrams = 4;
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  for (uint16_t id = 0; id < 4; ++id) EXPECT_FALSE(r.add_v4(frag4(0, true, id), sub(d, 0, 800), kT0 + 1s * id));
  EXPECT_EQ(r.in_progress(), 4u);
  EXPECT_FALSE(r.add_v4(frag4(0, true, 99), sub(d, 0, 800), kT0 + 5s));
  EXPECT_EQ(r.in_progress(), 4u);
  EXPECT_EQ(counters.get(Counter::frag_evicted), 1u);
  // id 1 still completes; id 0 was the oldest and is gone, so its tail starts afresh.
  EXPECT_TRUE(r.add_v4(frag4(800, false, 1), sub(d, 800, 800), kT0 + 5s));
  EXPECT_EQ(r.in_progress(), 3u);
  EXPECT_FALSE(r.add_v4(frag4(800, false, 0), sub(d, 800, 800), kT0 + 5s));
  EXPECT_EQ(r.in_progress(), 4u);
}

TEST_F(ReassemblyTest, FragmentCountLimit) {
  cfg.max_fragments = 4;
  Reassembler r(cfg, counters);
  const Buf d = pattern(80);
  for (uint16_t i = 0; i < 4; ++i) EXPECT_FALSE(r.add_v4(frag4(uint16_t(i * 8), true), sub(d, i * 8, 8), kT0));
  EXPECT_FALSE(r.add_v4(frag4(32, true), sub(d, 32, 8), kT0));  // the 5th
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
}

TEST_F(ReassemblyTest, ByteBudgetEvictsOldest) {
  cfg.max_bytes = 4000;
  Reassembler r(cfg, counters);
  const Buf d = pattern(3000);
  EXPECT_FALSE(r.add_v4(frag4(0, true, 1), sub(d, 0, 1600), kT0));
  EXPECT_FALSE(r.add_v4(frag4(0, true, 2), sub(d, 0, 1600), kT0));
  EXPECT_EQ(r.bytes_held(), 3200u);
  EXPECT_FALSE(r.add_v4(frag4(0, true, 3), sub(d, 0, 1600), kT0));
  EXPECT_LE(r.bytes_held(), 4000u);
  EXPECT_EQ(counters.get(Counter::frag_evicted), 1u);
  EXPECT_EQ(r.in_progress(), 2u);
}

TEST_F(ReassemblyTest, DifferentKeysDoNotMix) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  EXPECT_FALSE(r.add_v4(frag4(0, true, 1), sub(d, 0, 800), kT0));
  EXPECT_FALSE(r.add_v4(frag4(800, false, 2), sub(d, 800, 800), kT0));
  wire::Ipv4Repr other_proto = frag4(800, false, 1, wire::kProtoIcmp);
  EXPECT_FALSE(r.add_v4(other_proto, sub(d, 800, 800), kT0));
  EXPECT_EQ(r.in_progress(), 3u);
}

// ---- IPv6 ----------------------------------------------------------------------------------

TEST_F(ReassemblyTest, V6OutOfOrderWithParsedPackets) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(3000, 3);
  auto a = frag6(0, true, sub(d, 0, 1232));
  auto b = frag6(1232, true, sub(d, 1232, 1232));
  auto c = frag6(2464, false, sub(d, 2464, 536));
  EXPECT_FALSE(r.add_v6(c.ip, Bytes(c.packet), kT0));
  EXPECT_FALSE(r.add_v6(a.ip, Bytes(a.packet), kT0));
  auto out = r.add_v6(b.ip, Bytes(b.packet), kT0);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->l4.size(), 3000u);
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), d.size()), 0);
  EXPECT_FALSE(out->ip.fragment);
  EXPECT_EQ(out->ip.next_header, wire::kProtoUdp);
  EXPECT_EQ(out->ip.payload_len, 3000u);
  EXPECT_EQ(out->ip.dst, *Ipv6Addr::parse("2001:db8::1"));
}

TEST_F(ReassemblyTest, V6AtomicFragmentIsWhole) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(100);
  auto a = frag6(0, false, Bytes(d));
  auto out = r.add_v6(a.ip, Bytes(a.packet), kT0);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->l4.size(), 100u);
  EXPECT_FALSE(out->ip.fragment);
  EXPECT_EQ(r.in_progress(), 0u);
}

TEST_F(ReassemblyTest, V6HeaderChainAfterFragmentHeader) {
  // First fragment: Fragment header -> Destination Options (8 bytes) -> UDP.
  Reassembler r(cfg, counters);
  const Buf udp = pattern(1600, 5);
  Buf first_data(8);
  first_data[0] = std::byte{wire::kProtoUdp};  // next header
  first_data[1] = std::byte{0};                // 8 bytes total
  first_data[2] = std::byte{1};                // PadN
  first_data[3] = std::byte{4};
  first_data.insert(first_data.end(), udp.begin(), udp.begin() + 792);  // 800 bytes fragment
  auto a = frag6(0, true, Bytes(first_data), 77, wire::kNextDestOpts);
  auto b = frag6(800, false, sub(udp, 792, 808), 77, wire::kNextDestOpts);
  EXPECT_FALSE(r.add_v6(a.ip, Bytes(a.packet), kT0));
  auto out = r.add_v6(b.ip, Bytes(b.packet), kT0);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->l4.size(), 1600u);
  EXPECT_EQ(std::memcmp(out->l4.data(), udp.data(), udp.size()), 0);
  EXPECT_EQ(out->ip.next_header, wire::kProtoUdp);
}

TEST_F(ReassemblyTest, V6TinyFirstFragmentRejected) {
  // RFC 7112: the first fragment must carry the whole header chain up to the UDP header.
  Reassembler r(cfg, counters);
  Buf first_data(8);
  first_data[0] = std::byte{wire::kProtoUdp};
  first_data[1] = std::byte{0};
  auto a = frag6(0, true, Bytes(first_data), 78, wire::kNextDestOpts);  // dest-opts but no UDP header
  EXPECT_FALSE(r.add_v6(a.ip, Bytes(a.packet), kT0));
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
}

TEST_F(ReassemblyTest, V6OverlapDiscards) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(2000);
  auto a = frag6(0, true, sub(d, 0, 1000));
  auto b = frag6(992, false, sub(d, 992, 1008));
  EXPECT_FALSE(r.add_v6(a.ip, Bytes(a.packet), kT0));
  EXPECT_FALSE(r.add_v6(b.ip, Bytes(b.packet), kT0));
  EXPECT_EQ(r.in_progress(), 0u);
  EXPECT_EQ(counters.get(Counter::frag_invalid), 1u);
}

TEST_F(ReassemblyTest, ResultStaysValidUntilNextCall) {
  Reassembler r(cfg, counters);
  const Buf d = pattern(1600);
  EXPECT_FALSE(r.add_v4(frag4(0, true, 5), sub(d, 0, 800), kT0));
  auto out = r.add_v4(frag4(800, false, 5), sub(d, 800, 800), kT0);
  ASSERT_TRUE(out);
  r.expire(kT0 + 1h);  // expire() does not touch buffers
  EXPECT_EQ(std::memcmp(out->l4.data(), d.data(), d.size()), 0);
}

}  // namespace
}  // namespace moat::stack
