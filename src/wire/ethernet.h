#pragma once
// Ethernet II header (IEEE 802.3 §3.2, RFC 894). No FCS: the TAP and the VMM strip it.
#include <cstddef>
#include <cstdint>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800, kEtherTypeArp = 0x0806, kEtherTypeIpv6 = 0x86dd,
                          kEtherTypeVlan = 0x8100;

/// The 14-byte Ethernet II header. VLAN tags are not unwrapped: a tagged frame parses with
/// ethertype kEtherTypeVlan and the stack drops it (SPEC R-NET-1).
struct EthernetRepr {
  MacAddr dst, src;
  uint16_t ethertype = 0;

  static constexpr size_t kHeaderLen = 14;

  /// Reads the header of `frame` (>= 14 bytes, else truncated). The payload is
  /// frame.subspan(kHeaderLen).
  static Result<EthernetRepr, ParseError> parse(Bytes frame) noexcept;
  /// Writes 14 bytes at the start of `out`; false (nothing written) if out is shorter.
  bool emit(MutBytes out) const noexcept;

  friend bool operator==(const EthernetRepr&, const EthernetRepr&) = default;
};

}  // namespace moat::wire
