#pragma once
// IPv4 header (RFC 791 §3.1). Parse accepts options and skips them; emit never writes any.
#include <cstddef>
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
inline constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kProtoIcmpv6 = 58;

/// An IPv4 header as plain values.
struct Ipv4Repr {
  Ipv4Addr src, dst;
  uint8_t protocol = 0, ttl = 64, tos = 0;
  uint16_t ident = 0;
  bool dont_fragment = false, more_fragments = false;
  uint16_t frag_offset = 0;       ///< in bytes (the wire field * 8)
  uint16_t payload_len = 0;       ///< total length - header length
  uint8_t header_len_bytes = 20;  ///< parse: IHL*4; emit always writes 20 (no options)
  bool source_route = false;      ///< parse: options contained LSRR (131) or SSRR (137)

  static constexpr size_t kHeaderLen = 20;
  /// At most 40 bytes of options follow the fixed header (IHL is 4 bits).
  static constexpr size_t kMaxHeaderLen = 60;

  /// Checks (SPEC R-NET-3): version 4 (bad_version); IHL >= 5 and IHL*4 <= total length
  /// (bad_length); total length <= packet.size() (truncated); the header checksum
  /// (bad_checksum); the option list (bad_option). *payload (if non-null) gets the bytes
  /// from IHL*4 to the total length, so Ethernet padding is dropped.
  static Result<Ipv4Repr, ParseError> parse(Bytes packet, Bytes* payload) noexcept;
  [[nodiscard]] bool is_fragment() const noexcept { return more_fragments || frag_offset != 0; }
  /// Writes a 20-byte header (no options) with total length 20 + payload_len and the header
  /// checksum. False, nothing written, if out < 20 bytes, payload_len > 65515 or
  /// frag_offset is not a multiple of 8.
  bool emit(MutBytes out) const noexcept;

  friend bool operator==(const Ipv4Repr&, const Ipv4Repr&) = default;
};

}  // namespace moat::wire
