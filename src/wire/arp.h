#pragma once
// ARP for Ethernet + IPv4 only (RFC 826).
#include <cstddef>
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// ARP opcode (RFC 826; the only two moat handles).
enum class ArpOp : uint16_t { request = 1, reply = 2 };

/// An Ethernet/IPv4 ARP packet.
struct ArpRepr {
  ArpOp op = ArpOp::request;
  MacAddr sender_mac;
  Ipv4Addr sender_ip;
  MacAddr target_mac;
  Ipv4Addr target_ip;

  static constexpr size_t kLen = 28;

  /// Parses the Ethernet payload. htype 1, ptype 0x0800, hlen 6, plen 4 (else bad_version);
  /// op 1 or 2 (else unsupported). Trailing bytes (Ethernet padding) are ignored.
  static Result<ArpRepr, ParseError> parse(Bytes payload) noexcept;
  /// Writes 28 bytes at the start of `out`; false (nothing written) if out is shorter.
  bool emit(MutBytes out) const noexcept;

  friend bool operator==(const ArpRepr&, const ArpRepr&) = default;
};

}  // namespace moat::wire
