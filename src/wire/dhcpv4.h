#pragma once
// DHCPv4 messages (RFC 2131 §2, options RFC 2132) with option overload (RFC 2132 §9.3),
// the domain search list (option 119, RFC 3397) and classless static routes (option 121,
// RFC 3442). Parse reads what a client sends; emit writes what moat replies (R-NET-7).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"
#include "wire/errors.h"

namespace moat::wire {

/// UDP ports (RFC 2131 §4.1).
inline constexpr uint16_t kDhcpServerPort = 67, kDhcpClientPort = 68;

/// Option 53 values (RFC 2132 §9.6).
enum class DhcpMessageType : uint8_t { discover = 1, offer, request, decline, ack, nak, release, inform };

/// A DHCPv4 message as plain values. Spans and string views point into the parsed buffer
/// (parse) or into storage the caller keeps alive across emit().
struct Dhcpv4Repr {
  uint8_t op = 2;  ///< 1 BOOTREQUEST, 2 BOOTREPLY
  uint32_t xid = 0;
  uint16_t secs = 0;
  bool broadcast = false;  ///< the B flag (RFC 2131 §2, Figure 2)
  Ipv4Addr ciaddr, yiaddr, siaddr, giaddr;
  MacAddr chaddr;
  std::optional<DhcpMessageType> message_type;  ///< 53 (required for a valid message)
  // Request options (parse; emitted too when set).
  std::optional<Ipv4Addr> requested_ip;    ///< 50
  std::optional<Ipv4Addr> server_id;       ///< 54 (also emitted)
  Bytes parameter_request_list;            ///< 55
  Bytes client_id;                         ///< 61
  std::optional<uint16_t> max_message_size;  ///< 57
  // Reply options (emit; parse fills the ones it can hold without allocating).
  std::optional<Ipv4Addr> subnet_mask, router, broadcast_addr;  ///< 1, 3 (parse: first router), 28
  std::span<const Ipv4Addr> dns_servers;                         ///< 6 (emit only)
  std::optional<uint16_t> interface_mtu;                         ///< 26
  std::optional<uint32_t> lease_time, renewal_time, rebinding_time;  ///< 51, 58, 59
  std::string_view hostname;                                     ///< 12, when non-empty
  std::string_view domain_name;                                  ///< 15, when non-empty
  std::span<const std::string> search_domains;  ///< 119 (RFC 3397, uncompressed), emit only
  /// 121: 0.0.0.0/0 via this router (parse: the router of a 0/0 entry, if any).
  std::optional<Ipv4Addr> classless_default_route;
  std::string_view message;  ///< 56 (NAK reason), when non-empty

  /// Fixed BOOTP header plus the magic cookie (RFC 2131 §2, §3).
  static constexpr size_t kMinLen = 240;
  /// Shortest message emit() writes: the BOOTP minimum (RFC 1542 §2.1).
  static constexpr size_t kBootpMinLen = 300;
  /// Options taken from one option area before the message is rejected (R-HARD-1).
  static constexpr size_t kMaxOptionsPerArea = 255;

  /// Checks >= 240 bytes (truncated); op 1|2, htype 1, hlen 6 and the magic cookie
  /// 99.130.83.99 (bad_version). Walks the options field, then, as option 52 says, the
  /// file and sname fields (in that order, RFC 2131 §4.1), each once: PAD, END and TLV
  /// options, every one must fit and each area must end with END (bad_option). Option 52
  /// must have length 1 and value 1..3, and must not appear inside file/sname (bad_option).
  /// An option moat interprets with the wrong length is bad_option (R-NET-7). The first
  /// instance of an option wins; RFC 3396 concatenation is not done (parse cannot
  /// allocate), which matters only for values over 255 bytes. No option 53 is bad_option;
  /// an option 53 value outside 1..8 is unsupported.
  static Result<Dhcpv4Repr, ParseError> parse(Bytes udp_payload) noexcept;
  /// 240 + options + END, padded with zeros to at least 300 bytes.
  [[nodiscard]] size_t len() const noexcept;
  /// Writes len() bytes (htype 1, hlen 6, hops 0, sname and file zero). Options are written
  /// when set (53, 54, 51, 58, 59, 1, 28, 3, 6, 26, 12, 15, 119, 121, 56, 50, 57, 55, 61),
  /// values over 255 bytes split per RFC 3396. False, nothing written, if out is shorter
  /// than len() or a search domain is not encodable (encoded_domain_len() == 0).
  bool emit(MutBytes out) const noexcept;
};

}  // namespace moat::wire
