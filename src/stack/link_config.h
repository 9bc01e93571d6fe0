#pragma once
// The validated slice of the gateway config that the link layer needs (STYLE.md: each
// component's constructor takes only its own slice). config/ fills it after R-ADDR-2
// validation; the stack trusts it and never re-validates.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/time.h"

namespace moat::stack {

/// How DHCPv6 is offered (SPEC R-NET-8): the server's mode and the RA M/O flags (R-NET-6).
enum class Dhcpv6Mode : uint8_t { off, stateless, stateful };

struct LinkConfig {
  MacAddr gateway_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x01}};
  MacAddr guest_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};  ///< initial value until learned (R-ADDR-4)
  uint32_t mtu = 65520;                                      ///< IP MTU of the link
  bool ipv4_active = true, ipv6_active = true;               ///< R-ADDR-3, resolved by the caller

  Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  Ipv4Addr dns4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  int prefix4 = 30;

  Ipv6Addr guest6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  Ipv6Addr gateway6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  Ipv6Addr dns6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  int prefix6 = 64;

  bool dhcp4 = true;                                  ///< R-NET-7
  Duration lease_time = std::chrono::hours(24);
  std::string hostname;                               ///< DHCP option 12 when non-empty
  std::vector<std::string> search_domains;            ///< DHCP 15/119, RA DNSSL

  bool ra = true;                                     ///< R-NET-6
  Duration ra_interval = std::chrono::seconds(600);
  Dhcpv6Mode dhcpv6 = Dhcpv6Mode::stateless;          ///< server mode, RA M/O flags (R-NET-6/8)

  bool gateway_echo = true;                           ///< R-ICMP-1
  uint64_t seed = 0;                                  ///< RA jitter RNG seed (tests pass a fixed one)
};

}  // namespace moat::stack
