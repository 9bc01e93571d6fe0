#include "flows/destinations.h"

namespace moat::flows {

bool Destinations::is_gateway(const IpAddr& a) const noexcept {
  if (!a.is_v6) return a.v4 == cfg_.gateway4 || a.v4 == cfg_.dns4;
  return a.v6 == cfg_.gateway6 || a.v6 == cfg_.gateway6_link_local || a.v6 == cfg_.dns6;
}

DialPlan Destinations::plan_tcp(const IpAddr& dst, uint16_t port) const {
  DialPlan p;
  if (!is_gateway(dst)) {
    p.add({dst, port});
    return p;
  }
  p.to_gateway = true;
  if (port == 53 && !cfg_.dns_upstreams.empty()) {
    p.is_dns = true;
    for (const auto& u : cfg_.dns_upstreams) p.add(u);
    return p;
  }
  if (!cfg_.map_gateway_to_loopback) return p;
  if (dst.is_v6) {
    p.add({cfg_.loopback6, port});
    p.add({cfg_.loopback4, port});
  } else {
    p.add({cfg_.loopback4, port});
    p.add({cfg_.loopback6, port});
  }
  return p;
}

DialPlan Destinations::plan_udp(const IpAddr& dst, uint16_t port) const {
  DialPlan p;
  if (!is_gateway(dst)) {
    p.add({dst, port});
    return p;
  }
  p.to_gateway = true;
  if (port == 53 && !cfg_.dns_upstreams.empty()) {
    p.is_dns = true;
    for (const auto& u : cfg_.dns_upstreams) p.add(u);
    return p;
  }
  if (!cfg_.map_gateway_to_loopback) return p;
  p.add({dst.is_v6 ? IpAddr(cfg_.loopback6) : IpAddr(cfg_.loopback4), port});
  return p;
}

}  // namespace moat::flows
