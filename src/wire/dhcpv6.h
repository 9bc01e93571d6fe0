#pragma once
// DHCPv6 client/server messages (RFC 8415 §8, options §21) with the DNS options of RFC 3646
// (23 servers, 24 domain list). Parse reads what a client sends; emit writes what moat
// replies (SPEC R-NET-8). Relay messages (12, 13) are not parsed: moat is on-link only.
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

/// UDP ports (RFC 8415 §7.2).
inline constexpr uint16_t kDhcpv6ClientPort = 546, kDhcpv6ServerPort = 547;
/// All_DHCP_Relay_Agents_and_Servers, ff02::1:2 (RFC 8415 §7.1).
inline constexpr Ipv6Addr kDhcpv6AllServers{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2}};

/// Message types (RFC 8415 §7.3).
enum class Dhcpv6Type : uint8_t {
  solicit = 1, advertise, request, confirm, renew, rebind, reply, release, decline, reconfigure,
  information_request, relay_forw, relay_repl
};

/// Status codes (RFC 8415 §21.13).
enum class Dhcpv6Status : uint16_t { success = 0, unspec_fail, no_addrs_avail, no_binding, not_on_link, use_multicast };

/// An IA Address option (RFC 8415 §21.6).
struct Dhcpv6IaAddr {
  Ipv6Addr addr;
  uint32_t preferred_lifetime = 0, valid_lifetime = 0;
};

/// An IA_NA option (RFC 8415 §21.4): parse keeps the first IA Address inside it; emit
/// writes `addr` and/or `status` when set.
struct Dhcpv6IaNa {
  uint32_t iaid = 0, t1 = 0, t2 = 0;
  std::optional<Dhcpv6IaAddr> addr;
  std::optional<Dhcpv6Status> status;  ///< inside the IA_NA
};

/// A DHCPv6 message as plain values. Spans point into the parsed buffer (parse) or into
/// storage the caller keeps alive across emit().
struct Dhcpv6Repr {
  Dhcpv6Type type = Dhcpv6Type::reply;
  uint32_t transaction_id = 0;        ///< 24 bits
  Bytes client_id;                    ///< 1: the client's DUID, as is (empty = absent)
  Bytes server_id;                    ///< 2: a DUID (empty = absent)
  std::optional<Dhcpv6IaNa> ia_na;    ///< 3: the first IA_NA
  Bytes option_request;               ///< 6: pairs of option codes (parse only)
  std::optional<uint8_t> preference;  ///< 7
  std::optional<uint16_t> elapsed_time;  ///< 8, hundredths of a second (parse only)
  std::optional<Dhcpv6Status> status;    ///< 13, message level
  std::string_view status_message;       ///< 13's text
  bool rapid_commit = false;             ///< 14
  std::span<const Ipv6Addr> dns_servers;        ///< 23 (emit only)
  std::span<const std::string> domain_list;     ///< 24 (emit only; RFC 1035 names, uncompressed)
  std::optional<uint32_t> information_refresh_time;  ///< 32

  static constexpr size_t kHeaderLen = 4;
  /// DUIDs are at most 128 bytes (RFC 8415 §11.1).
  static constexpr size_t kMaxDuidLen = 128;
  /// Options looked at per message or per IA_NA (R-HARD-1): more is bad_option.
  static constexpr size_t kMaxOptions = 64;

  /// Checks >= 4 bytes (truncated), a message type 1..11 (relay messages and unknown types
  /// are `unsupported`; the server refuses server types itself), and walks the options: each 4-byte option header and its
  /// value must fit (bad_option), at most kMaxOptions. The options moat interprets must
  /// be well formed (bad_option): client/server id 1..128 bytes, IA_NA >= 12 bytes with
  /// its own walk, IA Address >= 24 bytes, ORO of even length, preference 1 byte, elapsed
  /// time 2 bytes, rapid commit empty, status code >= 2 bytes, information refresh time 4
  /// bytes. DNS servers and domain list are not read (a server never needs them). The first instance of an option wins; unknown
  /// options are skipped.
  static Result<Dhcpv6Repr, ParseError> parse(Bytes udp_payload) noexcept;
  /// Header plus every option set: 2 server id, 1 client id, 13 status, 7 preference,
  /// 14 rapid commit, 3 IA_NA (5 IA Address, 13 status inside), 23, 24, 32.
  [[nodiscard]] size_t len() const noexcept;
  /// Writes len() bytes. False, nothing useful written, if out is shorter than len(), a
  /// DUID is over 128 bytes, or a domain is not encodable.
  bool emit(MutBytes out) const noexcept;
};

}  // namespace moat::wire
