#include "flows/destinations.h"

namespace moat::flows {

bool Destinations::is_gateway(const IpAddr& a) const noexcept {
  if (!a.is_v6) return a.v4 == cfg_.gateway4 || a.v4 == cfg_.dns4;
  return a.v6 == cfg_.gateway6 || a.v6 == cfg_.gateway6_link_local || a.v6 == cfg_.dns6;
}

// The part shared by TCP and UDP: non-gateway destinations are dialled as addressed, and
// port 53 on a gateway address goes to the DNS upstreams. Returns true when `p` is final.
bool Destinations::plan_common(const IpAddr& dst, uint16_t port, DialPlan& p) const {
  if (!is_gateway(dst)) {
    p.add({dst, port});
    return true;
  }
  p.to_gateway = true;
  if (port == 53 && !cfg_.dns_upstreams.empty()) {
    p.is_dns = true;
    for (const auto& u : cfg_.dns_upstreams) p.add(u);
    return true;
  }
  return !cfg_.map_gateway_to_loopback;  // no target: refused
}

DialPlan Destinations::plan_tcp(const IpAddr& dst, uint16_t port) const {
  DialPlan p;
  if (plan_common(dst, port, p)) return p;
  // TCP falls back to the other family's loopback (R-ADDR-5).
  const Endpoint v4{cfg_.loopback4, port}, v6{cfg_.loopback6, port};
  p.add(dst.is_v6 ? v6 : v4);
  p.add(dst.is_v6 ? v4 : v6);
  return p;
}

DialPlan Destinations::plan_udp(const IpAddr& dst, uint16_t port) const {
  DialPlan p;
  if (plan_common(dst, port, p)) return p;
  // UDP maps to the loopback of the same family only (R-ADDR-5).
  p.add({dst.is_v6 ? IpAddr(cfg_.loopback6) : IpAddr(cfg_.loopback4), port});
  return p;
}

}  // namespace moat::flows
