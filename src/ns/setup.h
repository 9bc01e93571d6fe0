#pragma once
// Creating and configuring moat's TAP inside a network namespace (R-ADDR-6, R-CLI-3
// --no-configure). Runs in whatever network namespace the calling thread is in: the
// `run` child after unshare(), or the `attach` helper after setns().
#include <cstdint>
#include <optional>
#include <string>

#include "base/addr.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace moat::ns {

/// What the TAP looks like from inside the namespace. Values are assumed validated
/// (R-ADDR-2); the kernel still rejects nonsense, which becomes an error message.
struct TapSetup {
  std::string ifname = "moat0";
  MacAddr guest_mac;    ///< the TAP's own MAC (the guest side)
  MacAddr gateway_mac;  ///< moat's MAC: neighbour entries and the v6 link-local gateway
  uint32_t mtu = 1500;
  bool vnet_hdr = false;  ///< IFF_VNET_HDR (offloads on)
  /// false = --no-configure: only create, MAC, MTU, link up (lo up too). No address,
  /// route, neighbour or sysctl; accept_ra stays at the kernel default so SLAAC works.
  bool configure = true;
  std::optional<Ipv4Addr> guest4;  ///< nullopt = IPv4 inactive
  int prefix4 = 24;
  Ipv4Addr gateway4;
  Ipv4Addr dns4;
  std::optional<Ipv6Addr> guest6;  ///< nullopt = IPv6 inactive
  int prefix6 = 64;
  Ipv6Addr gateway6;
  Ipv6Addr dns6;
};

/// In the current network namespace: creates the TAP and, per R-ADDR-6, sets MAC and MTU;
/// (configure only) accept_ra/autoconf/accept_dad = 0 and disable_ipv6 = 0 when IPv6 is
/// active, the v4 address and the v6 address with IFA_F_NODAD; brings lo and the TAP up;
/// (configure only) adds default routes (v4 via gateway4, v6 via gateway_mac.link_local())
/// and permanent neighbour entries for the gateway and DNS addresses (v6: also the
/// gateway link-local) pointing at gateway_mac.
/// Fails if an interface named ifname exists (it is left alone). On any later failure
/// the TAP is deleted. The error is one line, e.g.
/// "moat0: add default route via 100.96.0.1: Network is unreachable".
Result<UniqueFd, std::string> setup_tap_here(const TapSetup& setup);

}  // namespace moat::ns
