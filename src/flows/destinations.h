#pragma once
// Where a guest flow is dialled on the host (SPEC R-ADDR-5, plain DNS forwarding):
//  * TCP/UDP to a gateway or DNS address, port 53  -> the DNS upstreams (in order);
//  * TCP to the IPv4 gateway (or DNS) address      -> 127.0.0.1:P, then [::1]:P;
//  * TCP to the IPv6 gateway (global or link-local) -> [::1]:P, then 127.0.0.1:P;
//  * UDP to a gateway address                      -> the loopback of the same family;
//  * anything else                                 -> the address the guest used.
// With map_gateway_to_loopback off, gateway destinations other than DNS get no target.
// DNS interception (TCP/53 to *any* address, TCP/853 refused: R-DNS-1) is not decided
// here: dns::Interceptor rewrites the plan as a TcpPeerProvider.
#include <array>
#include <cstdint>
#include <vector>

#include "base/addr.h"

namespace moat::flows {

struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Targets tried in order; the next one only after ECONNREFUSED, EADDRNOTAVAIL or
/// ENETUNREACH on the previous (R-ADDR-5). count == 0: nothing may be dialled.
struct DialPlan {
  static constexpr size_t kMax = 4;
  std::array<Endpoint, kMax> targets{};
  uint8_t count = 0;
  bool to_gateway = false;  ///< the guest addressed the gateway (policy group `host`)
  bool is_dns = false;      ///< plain DNS forwarding (port 53 to the gateway)
  void add(const Endpoint& e) {
    if (count < kMax) targets[count++] = e;
  }
};

struct DestinationConfig {
  bool ipv4_active = true, ipv6_active = true;
  Ipv4Addr gateway4, dns4;
  Ipv6Addr gateway6, gateway6_link_local, dns6;
  bool map_gateway_to_loopback = true;
  Ipv4Addr loopback4 = Ipv4Addr::from_octets(127, 0, 0, 1);
  Ipv6Addr loopback6{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  std::vector<Endpoint> dns_upstreams;  ///< --dns-upstream, or the host's resolv.conf
};

class Destinations {
 public:
  explicit Destinations(DestinationConfig cfg) : cfg_(std::move(cfg)) {}
  [[nodiscard]] bool is_gateway(const IpAddr& a) const noexcept;
  [[nodiscard]] DialPlan plan_tcp(const IpAddr& dst, uint16_t port) const;
  [[nodiscard]] DialPlan plan_udp(const IpAddr& dst, uint16_t port) const;
  [[nodiscard]] const DestinationConfig& config() const noexcept { return cfg_; }

 private:
  bool plan_common(const IpAddr& dst, uint16_t port, DialPlan& p) const;
  DestinationConfig cfg_;
};

}  // namespace moat::flows
