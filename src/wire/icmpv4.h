#pragma once
// ICMPv4 (RFC 792): echo and the error messages moat sends or quotes.
#include <cstddef>
#include <cstdint>

#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// ICMPv4 types moat handles (RFC 792).
inline constexpr uint8_t kIcmpEchoReply = 0, kIcmpDestUnreachable = 3, kIcmpEchoRequest = 8,
                         kIcmpTimeExceeded = 11, kIcmpParamProblem = 12;

/// An ICMPv4 message. Bytes 4..7 of the header are read as ident/seq for echo (types 0
/// and 8) and as the next-hop MTU for "fragmentation needed" (type 3 code 4, RFC 1191 §4);
/// for every other type they are ignored on parse and written as zero on emit.
struct Icmpv4Repr {
  uint8_t type = 0, code = 0;
  uint16_t ident = 0, seq = 0;  ///< echo request/reply
  uint16_t next_hop_mtu = 0;    ///< dest unreachable code 4
  Bytes data;                   ///< echo data, or the quoted datagram of an error

  static constexpr size_t kHeaderLen = 8;

  /// Parses a whole message: >= 8 bytes (truncated), checksum over all of it
  /// (bad_checksum). Any type parses; the stack decides what it handles.
  static Result<Icmpv4Repr, ParseError> parse(Bytes msg) noexcept;
  [[nodiscard]] size_t len() const noexcept { return kHeaderLen + data.size(); }
  /// Destination unreachable, source quench, redirect, time exceeded, parameter problem.
  [[nodiscard]] bool is_error() const noexcept;
  /// Writes len() bytes: the header, `data` (may already be in place, or overlap `out`)
  /// and the checksum. False, nothing written, if out < len() bytes.
  bool emit(MutBytes out) const noexcept;
};

}  // namespace moat::wire
