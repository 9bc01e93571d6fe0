#pragma once
// Neighbor Discovery messages RS, RA, NS and NA (RFC 4861 §4) with the options moat uses:
// source/target link-layer address (§4.6.1), prefix information (§4.6.2), MTU (§4.6.4),
// RDNSS and DNSSL (RFC 8106 §5.1, §5.2). Redirects are neither parsed nor sent (R-NET-5).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"
#include "wire/icmpv6.h"

namespace moat::wire {

/// NDP option types (RFC 4861 §4.6, RFC 8106 §5).
inline constexpr uint8_t kNdpOptSourceLinkAddr = 1, kNdpOptTargetLinkAddr = 2, kNdpOptPrefixInfo = 3,
                         kNdpOptMtu = 5, kNdpOptRdnss = 25, kNdpOptDnssl = 31;

/// The Prefix Information option (RFC 4861 §4.6.2).
struct NdpPrefixInfo {
  Ipv6Addr prefix;
  uint8_t prefix_len = 64;
  bool on_link = true, autonomous = true;  ///< the L and A flags
  uint32_t valid_lifetime = 0, preferred_lifetime = 0;

  friend bool operator==(const NdpPrefixInfo&, const NdpPrefixInfo&) = default;
};

/// An RS, RA, NS or NA as plain values.
struct NdpRepr {
  uint8_t type = 0;  ///< kNdpRouterSolicit .. kNdpNeighborAdvert
  // RA (RFC 4861 §4.2)
  uint8_t cur_hop_limit = 0;
  bool managed = false, other = false;  ///< the M and O flags
  uint16_t router_lifetime = 0;
  uint32_t reachable_time = 0, retrans_timer = 0;
  // NS / NA (§4.3, §4.4)
  Ipv6Addr target;
  bool router = false, solicited = false, override_ = false;  ///< NA flags R, S, O
  // Options. Parse keeps the first of each kind, skips unknown ones, and ignores a known
  // option that has the wrong length or is not defined for the message type (RFC 4861
  // §6.1, §7.1: "MUST be ignored"). Emit writes each one that is set, in this order.
  std::optional<MacAddr> source_ll, target_ll;
  std::optional<uint32_t> mtu;
  std::optional<NdpPrefixInfo> prefix;
  std::optional<Ipv6Addr> rdnss;  ///< parse: the first address of the first RDNSS option
  uint32_t rdnss_lifetime = 0;    ///< RDNSS lifetime; emit also uses it for DNSSL
  /// Emit only: search domains, written as one DNSSL option. Parse validates a DNSSL
  /// option's length but leaves this empty (it cannot allocate).
  std::span<const std::string> dnssl;

  /// Options walked before the message is rejected (R-HARD-1).
  static constexpr size_t kMaxOptions = 64;

  /// Rejects, in this order: a type other than RS/RA/NS/NA (unsupported); a message
  /// shorter than the fixed part of its type, 8/16/24/24 bytes (truncated); a bad ICMPv6
  /// checksum (bad_checksum; skipped in fuzzing builds); a code other than 0 (unsupported);
  /// an option of length 0, one running past the end, or more than 64 options
  /// (bad_option, RFC 4861 §4.6). Address rules of RFC 4861 §6.1.1/§7.1 are bad_option
  /// too: a source link-layer option in an RS/NS from ::, an NS from :: not sent to a
  /// solicited-node group, a multicast NS/NA target, an NA to multicast with S set.
  /// Hop limit 255 is the caller's check (it is in the IPv6 header).
  static Result<NdpRepr, ParseError> parse(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept;
  /// Message length with every set option, or 0 for an unknown type.
  [[nodiscard]] size_t len() const noexcept;
  /// Writes len() bytes including the checksum. False, nothing written, if out is shorter,
  /// the type is not RS/RA/NS/NA, a dnssl name is not encodable (encoded_domain_len) or the
  /// DNSSL option would exceed 255 * 8 bytes.
  bool emit(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept;
};

}  // namespace moat::wire
