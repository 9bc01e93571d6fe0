#pragma once
// Where a guest flow is dialled on the host (SPEC R-ADDR-5, plain DNS forwarding):
//  * TCP/UDP to a gateway or DNS address, port 53  -> the DNS upstreams (in order);
//  * TCP to the IPv4 gateway (or DNS) address      -> 127.0.0.1:P, then [::1]:P;
//  * TCP to the IPv6 gateway (global or link-local) -> [::1]:P, then 127.0.0.1:P;
//  * UDP to a gateway address                      -> the loopback of the same family;
//  * anything else                                 -> the address the guest used.
// With map_gateway_to_loopback off, gateway destinations other than DNS get no target.
// With DNS interception installed (set_dns_tcp_redirect), TCP/53 to *any* address goes to
// the forwarder's loopback listener instead, and TCP/853 may be refused (R-DNS-1).
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
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
  /// R-DNS-1: TCP/853 (DoT, no interception here) to any address is refused with RST.
  bool refuse_dot = false;
};

/// Where guest TCP/53 to `dst` is dialled instead (the DNS forwarder's loopback listener,
/// R-DNS-10); nullopt refuses the connection.
using DnsTcpRedirect = std::function<std::optional<Endpoint>(const IpAddr& dst)>;

class Destinations {
 public:
  explicit Destinations(DestinationConfig cfg) : cfg_(std::move(cfg)) {}
  [[nodiscard]] bool is_gateway(const IpAddr& a) const noexcept;
  [[nodiscard]] DialPlan plan_tcp(const IpAddr& dst, uint16_t port) const;
  [[nodiscard]] DialPlan plan_udp(const IpAddr& dst, uint16_t port) const;
  [[nodiscard]] const DestinationConfig& config() const noexcept { return cfg_; }
  /// Installs DNS interception for TCP/53 to any address (set once, before any flow).
  void set_dns_tcp_redirect(DnsTcpRedirect r) { dns_tcp_ = std::move(r); }

 private:
  bool plan_common(const IpAddr& dst, uint16_t port, DialPlan& p) const;
  DestinationConfig cfg_;
  DnsTcpRedirect dns_tcp_;
};

}  // namespace moat::flows
