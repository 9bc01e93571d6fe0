#pragma once
// UDP header (RFC 768). The guest's checksum is not verified (SPEC R-NET-3).
#include <cstddef>
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// A UDP header as plain values.
struct UdpRepr {
  uint16_t src_port = 0, dst_port = 0;
  uint16_t checksum = 0;  ///< parse: the raw field (0 = none; IPv6 forbids it, RFC 8200 §8.1)

  static constexpr size_t kHeaderLen = 8;

  /// Checks 8 <= length field (bad_length) <= datagram.size() (truncated). *payload (if
  /// non-null) is trimmed to the length field.
  static Result<UdpRepr, ParseError> parse(Bytes datagram, Bytes* payload) noexcept;
  /// `out` is the 8-byte header followed by the payload already in place (out.size() =
  /// 8 + payload length, at most 65535). Writes the header and the checksum (a computed 0
  /// is sent as 0xffff, RFC 768). False, nothing written, on a size violation.
  bool emit_v4(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept;
  bool emit_v6(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept;

  friend bool operator==(const UdpRepr&, const UdpRepr&) = default;
};

}  // namespace moat::wire
