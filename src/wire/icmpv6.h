#pragma once
// ICMPv6 echo and error messages (RFC 4443). NDP messages (types 133..137) have their own
// Repr in ndp.h; Icmpv6Repr still parses them generically so a caller can dispatch on type.
#include <cstddef>
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4).
inline constexpr uint8_t kIcmpv6DestUnreachable = 1, kIcmpv6PacketTooBig = 2, kIcmpv6TimeExceeded = 3,
                         kIcmpv6ParamProblem = 4, kIcmpv6EchoRequest = 128, kIcmpv6EchoReply = 129,
                         kNdpRouterSolicit = 133, kNdpRouterAdvert = 134, kNdpNeighborSolicit = 135,
                         kNdpNeighborAdvert = 136, kNdpRedirect = 137;

/// Upper-layer checksum (RFC 4443 §2.3) of an ICMPv6 message whose checksum field (bytes
/// 2..3) is zero or already filled in: with the field filled in, a valid message yields 0.
[[nodiscard]] uint16_t icmpv6_checksum(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept;

/// An ICMPv6 echo or error message as plain values.
struct Icmpv6Repr {
  uint8_t type = 0, code = 0;
  uint16_t ident = 0, seq = 0;  ///< echo request/reply (types 128, 129)
  /// Bytes 4..7 of every type but echo: the MTU of Packet Too Big (RFC 4443 §3.2), the
  /// pointer of Parameter Problem (§3.4), unused (zero) for the other errors, and carried
  /// verbatim for any other type so that parse/emit round-trips.
  uint32_t mtu_or_pointer = 0;
  Bytes data;  ///< echo data, or the quoted packet of an error (a sub-span of the input)

  static constexpr size_t kHeaderLen = 8;

  /// Checks length >= 8 (truncated) and the checksum over the IPv6 pseudo-header with
  /// upper-layer length msg.size() (bad_checksum; skipped in fuzzing builds). Any type is
  /// accepted; `data` is everything after the 8-byte header.
  static Result<Icmpv6Repr, ParseError> parse(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept;
  [[nodiscard]] size_t len() const noexcept { return kHeaderLen + data.size(); }
  /// Error messages are types 0..127 (RFC 4443 §2.1).
  [[nodiscard]] bool is_error() const noexcept { return type < 128; }
  /// Writes len() bytes: the header, then `data` (which may already be in place at
  /// out[8..], as for an error quoting a packet), then the checksum. False, nothing
  /// written, if out is shorter than len().
  bool emit(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept;
};

}  // namespace moat::wire
