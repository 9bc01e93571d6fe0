#pragma once
// IPv6 fixed header (RFC 8200 §3) and the extension-header walk (RFC 8200 §4).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// Next Header values of the extension headers moat walks (RFC 8200 §4).
inline constexpr uint8_t kNextHopByHop = 0, kNextRouting = 43, kNextFragment = 44, kNextNone = 59,
                         kNextDestOpts = 60;

/// What a Fragment header said (RFC 8200 §4.5).
struct Ipv6FragmentInfo {
  uint16_t offset = 0;  ///< in bytes (the wire field * 8)
  bool more = false;
  uint32_t ident = 0;
  uint8_t next_header = 0;

  friend bool operator==(const Ipv6FragmentInfo&, const Ipv6FragmentInfo&) = default;
};

/// An IPv6 header plus the summary of its extension headers.
struct Ipv6Repr {
  Ipv6Addr src, dst;
  uint8_t next_header = 0;  ///< parse: upper-layer protocol after the extension walk
  uint8_t hop_limit = 64, traffic_class = 0;
  uint32_t flow_label = 0;
  uint32_t payload_len = 0;      ///< parse: upper-layer bytes (after ext headers);
                                 ///< emit: bytes after the 40-byte fixed header
  uint16_t ext_headers_len = 0;  ///< parse: bytes of extension headers walked
  std::optional<Ipv6FragmentInfo> fragment;  ///< parse: a Fragment header was seen

  static constexpr size_t kHeaderLen = 40;
  /// Extension headers walked before giving up (SPEC R-NET-4).
  static constexpr int kMaxExtHeaders = 8;

  /// Checks version 6 (bad_version) and 40 + payload length <= packet.size() (truncated;
  /// trailing bytes are ignored). Walks at most 8 extension headers (a 9th is
  /// too_many_ext_headers): hop-by-hop (only directly after the fixed header, RFC 8200
  /// §4.1; elsewhere it ends the walk like an unknown header), destination options,
  /// routing (segments left must be 0, else routing_header), fragment (a second one is
  /// unsupported; when its offset != 0 the walk stops and next_header is the fragment's,
  /// since a non-first fragment has no upper-layer header). An extension header running
  /// past the payload is truncated. Any other value ends the walk and is reported in
  /// next_header. *payload (if non-null) gets the upper-layer bytes.
  static Result<Ipv6Repr, ParseError> parse(Bytes packet, Bytes* payload) noexcept;
  /// Writes the 40-byte fixed header, no extension headers. False, nothing written, if out
  /// < 40 bytes, payload_len > 65535 or flow_label > 20 bits.
  bool emit(MutBytes out) const noexcept;

  friend bool operator==(const Ipv6Repr&, const Ipv6Repr&) = default;
};

/// A Fragment extension header to emit (RFC 8200 §4.5).
struct Ipv6FragmentHeader {
  uint8_t next_header = 0;
  uint16_t offset = 0;  ///< in bytes; must be a multiple of 8
  bool more = false;
  uint32_t ident = 0;

  static constexpr size_t kLen = 8;

  /// Writes 8 bytes. False, nothing written, if out < 8 bytes or offset % 8 != 0.
  bool emit(MutBytes out) const noexcept;
};

}  // namespace moat::wire
