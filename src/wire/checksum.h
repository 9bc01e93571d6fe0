#pragma once
// Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers (RFC 793 §3.1, RFC 8200 §8.1).
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"

namespace moat::wire {

/// Ones'-complement accumulator. Every add() but the last must have even length.
class Checksum {
 public:
  void add(Bytes data) noexcept;
  void add16(uint16_t v) noexcept { sum_ += v; }
  void add32(uint32_t v) noexcept { sum_ += (v >> 16) + (v & 0xffff); }
  /// Folded, complemented result, ready to store in a header.
  [[nodiscard]] uint16_t finish() const noexcept;

 private:
  uint64_t sum_ = 0;
};

/// Checksum of one buffer (IPv4 header, ICMPv4 message).
uint16_t internet_checksum(Bytes data) noexcept;

/// Starts an accumulator with the IPv4 pseudo-header for `proto` and L4 length `len`.
Checksum pseudo_header_v4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, uint16_t len) noexcept;
/// Starts an accumulator with the IPv6 pseudo-header (upper-layer length, next header).
Checksum pseudo_header_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, uint32_t len) noexcept;

}  // namespace moat::wire
