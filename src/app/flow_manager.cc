#include "app/flow_manager.h"

#include "wire/ipv4.h"

namespace moat::app {

policy::HostAddrs host_addrs(const flows::DestinationConfig& d) {
  policy::HostAddrs h;
  if (d.ipv4_active) {
    h.addrs.push_back(IpAddr(d.gateway4));
    if (d.dns4 != d.gateway4) h.addrs.push_back(IpAddr(d.dns4));
  }
  if (d.ipv6_active) {
    h.addrs.push_back(IpAddr(d.gateway6));
    h.addrs.push_back(IpAddr(d.gateway6_link_local));
    if (d.dns6 != d.gateway6) h.addrs.push_back(IpAddr(d.dns6));
  }
  return h;
}

std::shared_ptr<const policy::Engine> default_policy(const flows::DestinationConfig& d) {
  return std::make_shared<const policy::Engine>(policy::resolve_policy(policy::PolicyInputs{}), host_addrs(d));
}

flows::TxCaps LinkIo::tx_caps() const {
  const transport::OffloadMask m = link_.guest_offloads();
  flows::TxCaps c;
  c.csum = (m & transport::kOffloadCsum) != 0;
  c.tso4 = c.csum && (m & transport::kOffloadTso4) != 0;
  c.tso6 = c.csum && (m & transport::kOffloadTso6) != 0;
  return c;
}

namespace {

dns::ForwarderConfig forwarder_config(const FlowsSetup& s) {
  const auto& d = s.engines.destinations;
  dns::ForwarderConfig f;
  f.upstreams = s.dns_upstreams;
  f.local_addrs = host_addrs(d).addrs;
  if (d.ipv4_active) f.gateway_addrs.push_back(IpAddr(d.gateway4));
  if (d.ipv6_active) f.gateway_addrs.push_back(IpAddr(d.gateway6));
  f.ipv4_active = d.ipv4_active;
  f.ipv6_active = d.ipv6_active;
  f.timeout = s.dns.timeout;
  f.deadline = s.dns.deadline;
  f.rebind_protection = s.dns.rebind_protection;
  switch (s.dns.direct_queries) {
    case config::DirectQueries::target: f.direct_queries = dns::DirectQueries::target; break;
    case config::DirectQueries::upstream: f.direct_queries = dns::DirectQueries::upstream; break;
    case config::DirectQueries::deny: f.direct_queries = dns::DirectQueries::deny; break;
  }
  f.max_inflight = s.dns.max_inflight;
  for (const auto& [name, addrs] : s.dns.hosts) {  // names normalised by the config loader / --dns-host
    std::vector<IpAddr> a;
    for (const auto& x : addrs) a.push_back(policy::normalize(x));
    f.hosts.emplace_back(name, std::move(a));
  }
  return f;
}


dns::InterceptorConfig interceptor_config(const FlowsSetup& s) {
  dns::InterceptorConfig c;
  c.forwarder = forwarder_config(s);
  c.tcp = dns::TcpServerConfig{s.dns.tcp_idle_timeout, 64, 16, 16};
  c.refuse_alt_ports = s.dns.refuse_alt_ports;
  c.deny_silently = s.deny_response == config::DenyResponse::drop;
  c.audit_all_queries = s.audit.dns == config::AuditDns::all;
  return c;
}

const dns::BlockList& empty_block_list() {
  static const dns::BlockList empty;
  return empty;
}

}  // namespace

FlowManager::FlowManager(event::Loop& loop, flows::GuestIo& io, Counters& counters, const FlowsSetup& setup)
    : policy_(setup.policy ? setup.policy : default_policy(setup.engines.destinations)),
      audit_(setup.audit_log),
      pins_(loop, dns::PinConfig{setup.dns.pin_min_ttl, setup.dns.pin_max_ttl, setup.dns.max_pins, setup.engines.budget}),
      block_(setup.dns.block_list),
      dns_(std::make_unique<dns::Interceptor>(loop, counters, io, interceptor_config(setup), policy_, pins_,
                                              block_ ? *block_ : empty_block_list(), audit_)),
      admission_(policy_, [this]() -> const policy::PinLookup& { return pins(); }, counters, setup.audit_log,
                 setup.deny_response, setup.first_flight_timeout),
      dispatch_(loop, io, counters, setup.engines),
      publisher_(loop, dispatch_.tcp(), io, counters, setup.publish) {
  dispatch_.set_admission(&admission_);
  publisher_.set_admission(&admission_);
  // R-UDP-1: replies on published UDP mappings first (step 3), then DNS (R-DNS-1).
  dispatch_.add_hook(flows::PacketMatch::any_port(wire::kProtoUdp), publisher_);
  dns_->attach(dispatch_);
}

}  // namespace moat::app
