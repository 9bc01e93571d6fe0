#pragma once
// Structure-aware mutation for the frame fuzz targets (SPEC R-HARD-6: "mutators keep
// checksums and lengths consistent"). libFuzzer's byte-level mutations almost always break
// an IPv4 total length, an IPv6 payload length or a UDP length, and the stack drops such a
// frame at its first length check: the fuzzer then spends its time in the length checks,
// not behind them. fix_l3() repairs what a mutation broke, after LLVMFuzzerMutate:
//
//   IPv4   total length := bytes present (<= 65535), header checksum
//   IPv6   payload length := bytes present; extension headers walked (at most 8) to the
//          upper layer
//   UDP    length := bytes present, checksum (pseudo-header)
//   TCP    checksum; ICMPv4 / ICMPv6 checksum
//
// L4 fields are fixed only in unfragmented packets (a first fragment's checksum covers
// bytes we do not have). Targets keep a share of inputs unrepaired (kLeaveBrokenOneIn)
// so the drop paths for bad lengths and checksums stay covered, and the fuzz build's
// FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION checksum skip is not what gets the fuzzer deep
// any more: a release build's parsers accept the repaired frames too.
//
// MOAT_FUZZ_NO_FIXUP=1 in the environment turns the repair off (plain LLVMFuzzerMutate), to
// measure what it buys: see fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace moat::fuzz {

/// One input in this many keeps the mutation's lengths and checksums as they are.
inline constexpr unsigned kLeaveBrokenOneIn = 8;

inline bool fixup_disabled() {
  static const bool off = [] {
    const char* e = std::getenv("MOAT_FUZZ_NO_FIXUP");
    return e && *e && *e != '0';
  }();
  return off;
}

inline void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline Bytes as_bytes(const uint8_t* p, size_t n) { return Bytes(reinterpret_cast<const std::byte*>(p), n); }

/// Where the L4 checksum went, for a virtio-net NEEDS_CSUM header (vnet_frame): with
/// `partial` set the field gets only the pseudo-header sum, as a guest driver leaves it for
/// the device to complete from csum_start / csum_offset.
struct L4Spot {
  bool partial = false;
  bool found = false;
  size_t start = 0;   ///< L4 header offset from the start of the frame
  size_t offset = 0;  ///< checksum field offset from `start`
};

/// Fills the checksum of an L4 message `l4` (n bytes) whose pseudo-header sum is `c`.
inline void fix_l4(uint8_t proto, uint8_t* l4, size_t n, wire::Checksum c, bool v6, L4Spot* spot = nullptr,
                   size_t l4_start = 0) {
  size_t off;
  switch (proto) {
    case wire::kProtoTcp:
      if (n < 20) return;
      off = 16;
      break;
    case wire::kProtoUdp:
      if (n < 8) return;
      put16(l4 + 4, uint16_t(n));
      off = 6;
      break;
    case wire::kProtoIcmp:
      if (n < 4 || v6) return;
      off = 2;
      c = wire::Checksum{};  // ICMPv4 has no pseudo-header
      break;
    case wire::kProtoIcmpv6:
      if (n < 4 || !v6) return;
      off = 2;
      break;
    default: return;
  }
  l4[off] = l4[off + 1] = 0;
  if (spot) {
    spot->found = true;
    spot->start = l4_start;
    spot->offset = off;
    if (spot->partial) {
      put16(l4 + off, uint16_t(~c.finish()));  // the folded pseudo-header sum, uncomplemented
      return;
    }
  }
  c.add(as_bytes(l4, n));
  uint16_t sum = c.finish();
  if (proto == wire::kProtoUdp && sum == 0) sum = 0xffff;  // RFC 768: 0 means "none"
  put16(l4 + off, sum);
}

inline void fix_ipv4(uint8_t* p, size_t n, L4Spot* spot = nullptr, size_t base = 0) {
  if (n < 20 || (p[0] >> 4) != 4) return;
  const size_t ihl = size_t(p[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > n) return;
  if (n > 0xffff) n = 0xffff;
  put16(p + 2, uint16_t(n));
  p[10] = p[11] = 0;
  put16(p + 10, wire::internet_checksum(as_bytes(p, ihl)));
  const uint16_t frag = get16(p + 6);
  if ((frag & 0x3fff) != 0) return;  // a fragment: its L4 checksum covers other bytes
  Ipv4Addr src, dst;
  src.value = uint32_t(p[12]) << 24 | uint32_t(p[13]) << 16 | uint32_t(p[14]) << 8 | p[15];
  dst.value = uint32_t(p[16]) << 24 | uint32_t(p[17]) << 16 | uint32_t(p[18]) << 8 | p[19];
  const uint8_t proto = p[9];
  const size_t l4 = n - ihl;
  fix_l4(proto, p + ihl, l4, wire::pseudo_header_v4(src, dst, proto, uint16_t(l4)), false, spot, base + ihl);
}

inline void fix_ipv6(uint8_t* p, size_t n, L4Spot* spot = nullptr, size_t base = 0) {
  if (n < 40 || (p[0] >> 4) != 6) return;
  if (n - 40 > 0xffff) n = 40 + 0xffff;
  put16(p + 4, uint16_t(n - 40));
  Ipv6Addr src, dst;
  for (int i = 0; i < 16; ++i) {
    src.bytes[size_t(i)] = p[8 + i];
    dst.bytes[size_t(i)] = p[24 + i];
  }
  uint8_t nh = p[6];
  size_t off = 40;
  // RFC 8200 §4: hop-by-hop, routing, destination options (8 * (len + 1) bytes) and the
  // fragment header (8 bytes); bounded like the stack's own walk.
  for (int i = 0; i < wire::Ipv6Repr::kMaxExtHeaders; ++i) {
    if (nh == wire::kNextHopByHop || nh == wire::kNextRouting || nh == wire::kNextDestOpts) {
      if (n - off < 8) return;
      const size_t len = (size_t(p[off + 1]) + 1) * 8;
      if (len > n - off) return;
      nh = p[off];
      off += len;
    } else if (nh == wire::kNextFragment) {
      if (n - off < 8) return;
      if ((get16(p + off + 2) & 0xfff9) != 0) return;  // offset or M set: a real fragment
      nh = p[off];
      off += 8;
    } else {
      break;
    }
  }
  const size_t l4 = n - off;
  fix_l4(nh, p + off, l4, wire::pseudo_header_v6(src, dst, nh, uint32_t(l4)), true, spot, base + off);
}

/// Repairs the network-layer packet at `p` (n bytes) of EtherType `type`; `base` is its
/// offset in the frame (for `spot`).
inline void fix_l3(uint16_t type, uint8_t* p, size_t n, L4Spot* spot = nullptr, size_t base = 0) {
  if (type == wire::kEtherTypeIpv4) fix_ipv4(p, n, spot, base);
  else if (type == wire::kEtherTypeIpv6) fix_ipv6(p, n, spot, base);
}

/// Repairs an Ethernet frame (an 802.1Q tag is looked through once).
inline void fix_frame(uint8_t* f, size_t n, L4Spot* spot = nullptr) {
  if (n < 14) return;
  size_t off = 12;
  uint16_t type = get16(f + off);
  if (type == wire::kEtherTypeVlan && n >= 18) {
    off += 4;
    type = get16(f + off);
  }
  fix_l3(type, f + off + 2, n - off - 2, spot, off + 2);
}

/// splitmix64 step over libFuzzer's seed, for the targets' own choices.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace moat::fuzz
