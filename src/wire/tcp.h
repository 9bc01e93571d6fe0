#pragma once
// TCP header and the options moat understands (RFC 9293 §3.1, RFC 7323, RFC 2018).
// The guest's checksum is not verified (SPEC R-NET-3).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// A TCP sequence number. Arithmetic wraps and comparisons are modulo 2^32 (RFC 9293
/// §3.4, Seastar's tcp_seq): a < b iff (b - a) as a signed 32-bit value is > 0. This is
/// not a total order; it is meaningful for numbers less than 2^31 apart.
struct SeqNum {
  uint32_t value = 0;

  friend constexpr SeqNum operator+(SeqNum a, uint32_t n) noexcept { return SeqNum{a.value + n}; }
  friend constexpr SeqNum operator-(SeqNum a, uint32_t n) noexcept { return SeqNum{a.value - n}; }
  /// Signed distance from b to a (a - b), e.g. bytes in flight = snd_nxt - snd_una.
  friend constexpr int32_t operator-(SeqNum a, SeqNum b) noexcept {
    return static_cast<int32_t>(a.value - b.value);  // modular conversion (C++20)
  }
  constexpr SeqNum& operator+=(uint32_t n) noexcept {
    value += n;
    return *this;
  }
  constexpr SeqNum& operator-=(uint32_t n) noexcept {
    value -= n;
    return *this;
  }
  friend constexpr bool operator==(SeqNum, SeqNum) = default;
  friend constexpr bool operator<(SeqNum a, SeqNum b) noexcept { return (a - b) < 0; }
  friend constexpr bool operator>(SeqNum a, SeqNum b) noexcept { return (a - b) > 0; }
  friend constexpr bool operator<=(SeqNum a, SeqNum b) noexcept { return (a - b) <= 0; }
  friend constexpr bool operator>=(SeqNum a, SeqNum b) noexcept { return (a - b) >= 0; }
};

/// Of two sequence numbers, the later / earlier (modulo 2^32).
constexpr SeqNum seq_max(SeqNum a, SeqNum b) noexcept { return a < b ? b : a; }
constexpr SeqNum seq_min(SeqNum a, SeqNum b) noexcept { return a < b ? a : b; }

/// The TCP flag bits in octet 13 (RFC 9293 §3.1, RFC 3168 §6.1 for ECE/CWR).
namespace tcp_flags {
inline constexpr uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10, urg = 0x20, ece = 0x40,
                         cwr = 0x80;
}  // namespace tcp_flags

/// TCP option kinds (IANA "TCP Option Kind Numbers").
inline constexpr uint8_t kTcpOptEnd = 0, kTcpOptNop = 1, kTcpOptMss = 2, kTcpOptWindowScale = 3,
                         kTcpOptSackPermitted = 4, kTcpOptSack = 5, kTcpOptTimestamps = 8;

/// A TCP header with the options moat reads and writes.
struct TcpRepr {
  uint16_t src_port = 0, dst_port = 0;
  SeqNum seq, ack;
  uint8_t flags = 0;
  uint16_t window = 0, urgent = 0;
  std::optional<uint16_t> mss;
  std::optional<uint8_t> window_scale;  ///< parse: values > 14 read as 14 (RFC 7323 §2.3)
  bool sack_permitted = false;
  std::optional<std::pair<uint32_t, uint32_t>> timestamps;  ///< (tsval, tsecr)

  static constexpr size_t kHeaderLen = 20;
  static constexpr size_t kMaxHeaderLen = 60;
  /// Largest shift allowed by RFC 7323 §2.3.
  static constexpr uint8_t kMaxWindowScale = 14;

  /// Checks 5 <= data offset (bad_length) and offset*4 <= segment.size() (truncated).
  /// Options: EOL, NOP and kind-length-value; a length < 2 or past the header is
  /// bad_option; a known kind with the wrong length is ignored, as are unknown kinds
  /// (SPEC R-TCP-2). The first of each known option wins. *payload (if non-null) is
  /// everything after the header.
  static Result<TcpRepr, ParseError> parse(Bytes segment, Bytes* payload) noexcept;
  /// 20 + options, a multiple of 4, in Linux's order: MSS 4; timestamps 12 (2 NOPs, or
  /// SACK-permitted, + 10); SACK-permitted without timestamps 4 (2 NOPs + 2); window
  /// scale 4 (NOP + 3).
  [[nodiscard]] size_t header_len() const noexcept;
  [[nodiscard]] bool has(uint8_t f) const noexcept { return (flags & f) != 0; }
  /// `out` is header_len() bytes followed by the payload already in place. Writes the
  /// header and the checksum over pseudo-header, header and payload. False, nothing
  /// written, if out < header_len() (or > 65535 bytes for IPv4).
  bool emit_v4(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept;
  bool emit_v6(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept;
  /// Checksum offload (R-TR-6, virtio NEEDS_CSUM): writes the header, and in the checksum
  /// field only the folded, uncomplemented pseudo-header sum for out.size() bytes, which
  /// is what a virtio device or the kernel completes (and keeps correct when it splits a
  /// TSO super-frame). The payload is neither read nor summed.
  bool emit_v4_partial(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept;
  bool emit_v6_partial(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept;
  /// Offset of the checksum field in the header (RFC 9293 §3.1): virtio's csum_offset.
  static constexpr size_t kChecksumOffset = 16;

  friend bool operator==(const TcpRepr&, const TcpRepr&) = default;
};

}  // namespace moat::wire
