#include "policy/groups.h"

#include <array>

namespace moat::policy {

namespace {

constexpr Ipv4Addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return Ipv4Addr::from_octets(a, b, c, d); }

struct Net4 {
  Ipv4Addr net;
  int prefix;
};
struct Net6 {
  std::array<uint8_t, 16> net;
  int prefix;
};

// R-POL-4 row 2: AWS IMDS, AWS DNS, AWS time, ECS task metadata, EKS pod identity, Alibaba,
// Azure WireServer.
constexpr std::array<Ipv4Addr, 7> kMetadata4 = {v4(169, 254, 169, 254), v4(169, 254, 169, 253),
                                                v4(169, 254, 169, 123), v4(169, 254, 170, 2),
                                                v4(169, 254, 170, 23),  v4(100, 100, 100, 200),
                                                v4(168, 63, 129, 16)};
// fd00:ec2::254, ::253, ::123, ::23 (hex groups, as written in the AWS docs).
constexpr std::array<Ipv6Addr, 4> kMetadata6 = {
    Ipv6Addr{{0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}},
    Ipv6Addr{{0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x53}},
    Ipv6Addr{{0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x23}},
    Ipv6Addr{{0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x23}},
};

constexpr std::array<Net4, 4> kPrivate4 = {
    Net4{v4(10, 0, 0, 0), 8}, Net4{v4(172, 16, 0, 0), 12}, Net4{v4(192, 168, 0, 0), 16}, Net4{v4(100, 64, 0, 0), 10}};
constexpr std::array<Net4, 8> kReserved4 = {
    Net4{v4(0, 0, 0, 0), 8},      Net4{v4(192, 0, 0, 0), 24},   Net4{v4(192, 0, 2, 0), 24},
    Net4{v4(192, 88, 99, 0), 24}, Net4{v4(198, 18, 0, 0), 15},  Net4{v4(198, 51, 100, 0), 24},
    Net4{v4(203, 0, 113, 0), 24}, Net4{v4(240, 0, 0, 0), 4}};
// ::/8 is handled separately (its exceptions are tested earlier or normalised away).
constexpr std::array<Net6, 6> kReserved6 = {
    Net6{{0x01, 0x00}, 64},                    // 100::/64 discard-only
    Net6{{0x20, 0x01, 0x00, 0x02}, 48},        // 2001:2::/48 benchmarking
    Net6{{0x20, 0x01, 0x0d, 0xb8}, 32},        // 2001:db8::/32 documentation
    Net6{{0x3f, 0xff, 0x00}, 20},              // 3fff::/20 documentation
    Net6{{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48},  // 64:ff9b:1::/48 local-use NAT64
    Net6{{0xfe, 0xc0}, 10},                    // fec0::/10 site-local (deprecated)
};

bool in_any(Ipv4Addr a, const auto& nets) {
  for (const auto& n : nets)
    if (a.in_subnet(n.net, n.prefix)) return true;
  return false;
}

bool is_host(const IpAddr& a, const HostAddrs& host) {
  for (const auto& h : host.addrs)
    if (normalize(h) == a) return true;
  return false;
}

Group classify4(Ipv4Addr a, const IpAddr& as_given, const HostAddrs& host) {
  if (a.is_unspecified()) return Group::none;
  if (is_host(as_given, host) || is_host(IpAddr(a), host)) return Group::host;
  for (auto m : kMetadata4)
    if (a == m) return Group::metadata;
  if (a.is_loopback()) return Group::loopback;
  if (in_any(a, kPrivate4)) return Group::private_;
  if (a.is_link_local()) return Group::link_local;
  if (a.is_multicast()) return Group::multicast;
  if (in_any(a, kReserved4)) return Group::reserved;
  return Group::public_;
}

}  // namespace

std::string_view group_name(Group g) noexcept {
  switch (g) {
    case Group::none: return "none";
    case Group::host: return "host";
    case Group::metadata: return "metadata";
    case Group::loopback: return "loopback";
    case Group::private_: return "private";
    case Group::link_local: return "link-local";
    case Group::multicast: return "multicast";
    case Group::reserved: return "reserved";
    case Group::public_: return "public";
  }
  return "none";
}

std::optional<Group> parse_group(std::string_view s) noexcept {
  for (Group g : {Group::host, Group::metadata, Group::loopback, Group::private_, Group::link_local,
                  Group::multicast, Group::reserved, Group::public_})
    if (s == group_name(g)) return g;
  return std::nullopt;
}

IpAddr normalize(const IpAddr& a) noexcept {
  if (!a.is_v6 || !a.v6.is_v4_mapped()) return a;
  const auto& b = a.v6.bytes;
  return IpAddr(Ipv4Addr::from_octets(b[12], b[13], b[14], b[15]));
}

std::optional<Ipv4Addr> nat64_embedded(const Ipv6Addr& a) noexcept {
  static constexpr std::array<uint8_t, 12> kPrefix = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < kPrefix.size(); ++i)
    if (a.bytes[i] != kPrefix[i]) return std::nullopt;
  return Ipv4Addr::from_octets(a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]);
}

Group classify(const IpAddr& given, const HostAddrs& host) noexcept {
  const IpAddr a = normalize(given);
  if (!a.is_v6) return classify4(a.v4, a, host);
  const Ipv6Addr& v = a.v6;
  // NAT64 is classified by the embedded IPv4 address, but a host address configured in NAT64
  // form still counts as host (classify4 checks both forms).
  if (auto e = nat64_embedded(v)) return classify4(*e, a, host);
  if (v.is_unspecified()) return Group::none;
  if (is_host(a, host)) return Group::host;
  for (const auto& m : kMetadata6)
    if (v == m) return Group::metadata;
  if (v.is_loopback()) return Group::loopback;
  if ((v.bytes[0] & 0xfe) == 0xfc) return Group::private_;  // fc00::/7
  if (v.is_link_local()) return Group::link_local;          // fe80::/10
  if (v.is_multicast()) return Group::multicast;            // ff00::/8
  if (v.bytes[0] == 0) return Group::reserved;              // ::/8 minus ::, ::1, mapped
  for (const auto& n : kReserved6)
    if (v.in_subnet(Ipv6Addr{n.net}, n.prefix)) return Group::reserved;
  return Group::public_;
}

}  // namespace moat::policy
