#pragma once
// Address groups (SPEC R-POL-4) and address normalisation. Pure functions: no I/O.
#include <optional>
#include <string_view>
#include <vector>

#include "base/addr.h"

namespace moat::policy {

/// The group of an address. Enumerators are in R-POL-4's test order; each address belongs
/// to exactly one group. `none` is the unspecified address, which is always refused.
enum class Group : uint8_t { none, host, metadata, loopback, private_, link_local, multicast, reserved, public_ };

/// The addresses that make up group `host`: the gateway (IPv4, IPv6 global and link-local)
/// and the DNS addresses. Stored as given; classify() normalises both sides.
struct HostAddrs {
  std::vector<IpAddr> addrs;
};

/// Rule-string keyword of a group ("public", "link-local", ...; "none" for Group::none).
std::string_view group_name(Group g) noexcept;
/// Inverse of group_name() for the eight rule-string group keywords (lowercase input);
/// "none" is not a rule keyword and yields nullopt.
std::optional<Group> parse_group(std::string_view lower) noexcept;

/// IPv4-mapped IPv6 (::ffff:0:0/96) becomes IPv4; everything else is returned unchanged.
IpAddr normalize(const IpAddr& a) noexcept;
/// The IPv4 address embedded in a NAT64 address (64:ff9b::/96), if `a` is one.
std::optional<Ipv4Addr> nat64_embedded(const Ipv6Addr& a) noexcept;

/// R-POL-4 classification, in the table's order. The address is normalised first; a NAT64
/// address is classified by its embedded IPv4 address.
Group classify(const IpAddr& a, const HostAddrs& host) noexcept;

}  // namespace moat::policy
