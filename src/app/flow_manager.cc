#include "app/flow_manager.h"

#include <sys/random.h>


#include <cstring>

#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/udp.h"

namespace moat::app {

namespace {
uint64_t random_u64() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != ssize_t(sizeof v)) v = uint64_t(::time(nullptr)) ^ 0x6d6f6174;
  return v;
}
// splitmix64: cheap, good enough for fragment identifications.
uint64_t next_random(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
constexpr size_t kMaxUdpDatagram = 65535;
}  // namespace

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

LinkIo::LinkIo(stack::Interface& iface, transport::FrameTransport& link, uint32_t mtu)
    : iface_(iface), link_(link), mtu_(mtu), scratch_(kMaxUdpDatagram), rng_state_(random_u64()) {
  next_ident_v4_ = uint16_t(next_random(rng_state_));
}

bool LinkIo::send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) {
  return iface_.send_ipv4(src, dst, proto, l4_len, fill);
}

bool LinkIo::send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                       FunctionRef<void(MutBytes)> fill) {
  return iface_.send_ipv6(src, dst, next_header, l4_len, fill);
}

flows::TxCaps LinkIo::tx_caps() const {
  const transport::OffloadMask m = link_.guest_offloads();
  flows::TxCaps c;
  c.csum = (m & transport::kOffloadCsum) != 0;
  c.tso4 = c.csum && (m & transport::kOffloadTso4) != 0;
  c.tso6 = c.csum && (m & transport::kOffloadTso6) != 0;
  return c;
}

bool LinkIo::send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                         const flows::TcpTxOffload& o) {
  return iface_.send_tcp_v4(src, dst, l4_len, fill, stack::TcpOffload{o.gso_size, o.partial});
}

bool LinkIo::send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                         const flows::TcpTxOffload& o) {
  return iface_.send_tcp_v6(src, dst, l4_len, fill, stack::TcpOffload{o.gso_size, o.partial});
}

bool LinkIo::send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload) {
  const size_t total = wire::UdpRepr::kHeaderLen + payload.size();
  if (total > kMaxUdpDatagram - 20) return false;
  wire::UdpRepr udp{src_port, dst_port};
  if (20 + total <= mtu_) {
    return iface_.send_ipv4(src, dst, wire::kProtoUdp, total, [&](MutBytes l4) {
      std::memcpy(l4.data() + 8, payload.data(), payload.size());
      udp.emit_v4(l4, src, dst);
    });
  }
  // R-UDP-4: fragment to the MTU. The checksum covers the whole datagram, so build it once.
  MutBytes whole(scratch_.data(), total);
  std::memcpy(whole.data() + 8, payload.data(), payload.size());
  udp.emit_v4(whole, src, dst);
  const size_t chunk_max = (mtu_ - 20) & ~size_t(7);
  const uint16_t ident = next_ident_v4_++;
  for (size_t off = 0; off < total; off += chunk_max) {
    size_t chunk = std::min(chunk_max, total - off);
    stack::Ipv4SendOptions opt;
    opt.dont_fragment = false;
    opt.more_fragments = off + chunk < total;
    opt.frag_offset = uint16_t(off);
    opt.ident = ident;
    bool ok = iface_.send_ipv4(
        src, dst, wire::kProtoUdp, chunk, [&](MutBytes l4) { std::memcpy(l4.data(), whole.data() + off, chunk); },
        opt);
    if (!ok) return false;
  }
  return true;
}

bool LinkIo::send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port,
                         Bytes payload) {
  const size_t total = wire::UdpRepr::kHeaderLen + payload.size();
  if (total > kMaxUdpDatagram) return false;
  wire::UdpRepr udp{src_port, dst_port};
  if (40 + total <= mtu_) {
    return iface_.send_ipv6(src, dst, wire::kProtoUdp, total, [&](MutBytes l4) {
      std::memcpy(l4.data() + 8, payload.data(), payload.size());
      udp.emit_v6(l4, src, dst);
    });
  }
  MutBytes whole(scratch_.data(), total);
  std::memcpy(whole.data() + 8, payload.data(), payload.size());
  udp.emit_v6(whole, src, dst);
  const size_t chunk_max = (mtu_ - 40 - wire::Ipv6FragmentHeader::kLen) & ~size_t(7);
  const uint32_t ident = uint32_t(next_random(rng_state_));
  for (size_t off = 0; off < total; off += chunk_max) {
    size_t chunk = std::min(chunk_max, total - off);
    wire::Ipv6FragmentHeader fh{wire::kProtoUdp, uint16_t(off), off + chunk < total, ident};
    bool ok = iface_.send_ipv6(src, dst, wire::kNextFragment, wire::Ipv6FragmentHeader::kLen + chunk,
                               [&](MutBytes l4) {
                                 fh.emit(l4.first(wire::Ipv6FragmentHeader::kLen));
                                 std::memcpy(l4.data() + wire::Ipv6FragmentHeader::kLen, whole.data() + off, chunk);
                               });
    if (!ok) return false;
  }
  return true;
}

bool LinkIo::send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                                uint8_t code, Instant now, uint16_t next_hop_mtu) {
  return iface_.send_icmp_error_v4(offending, offending_l4, src, type, code, now, next_hop_mtu);
}

bool LinkIo::send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src,
                                uint8_t type, uint8_t code, Instant now, uint32_t mtu_or_pointer) {
  return iface_.send_icmp_error_v6(offending, offending_l4, src, type, code, now, mtu_or_pointer);
}

namespace {

dns::ForwarderConfig forwarder_config(const FlowsSetup& s) {
  const auto& d = s.destinations;
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

flows::DestinationConfig with_dot_refused(flows::DestinationConfig d, const config::DnsConfig& dns) {
  d.refuse_dot = dns.refuse_alt_ports;
  return d;
}

const dns::BlockList& empty_block_list() {
  static const dns::BlockList empty;
  return empty;
}

constexpr uint8_t kIcmp4PortUnreachable = 3;
constexpr uint8_t kIcmp6PortUnreachable = 4;

}  // namespace

FlowManager::FlowManager(event::Loop& loop, flows::GuestIo& io, Counters& counters, const FlowsSetup& setup)
    : counters_(counters),
      policy_(setup.policy ? setup.policy : default_policy(setup.destinations)),
      audit_(setup.audit_log),
      pins_(loop, dns::PinConfig{setup.dns.pin_min_ttl, setup.dns.pin_max_ttl, setup.dns.max_pins}),
      block_(setup.dns.block_list),
      refuse_alt_ports_(setup.dns.refuse_alt_ports),
      deny_silently_(setup.deny_response == config::DenyResponse::drop),
      admission_(policy_, [this]() -> const policy::PinLookup& { return pins(); }, counters, setup.audit_log,
                 setup.deny_response, setup.first_flight_timeout),
      destinations_(with_dot_refused(setup.destinations, setup.dns)),
      tcp_(loop, io, destinations_, counters, setup.tcp),
      udp_(loop, io, destinations_, counters, setup.udp),
      publisher_(loop, tcp_, io, counters, setup.publish),
      io_(io) {
  if (setup.icmp_relay) icmp_ = std::make_unique<flows::IcmpRelay>(loop, io, counters, setup.icmp);
  tcp_.set_admission(&admission_);
  udp_.set_admission(&admission_);
  publisher_.set_admission(&admission_);
  dns_ = std::make_unique<dns::Forwarder>(loop, counters, forwarder_config(setup), policy_, pins_,
                                          block_ ? *block_ : empty_block_list());
  dns_tcp_ = std::make_unique<dns::TcpServer>(
      loop, counters, *dns_, dns::TcpServerConfig{setup.dns.tcp_idle_timeout, 64, 16, 16});
  if (audit_) {
    dns_->set_audit([this](const dns::DnsEvent& e) { audit_dns(e); }, setup.audit.dns == config::AuditDns::all);
  }
  destinations_.set_dns_tcp_redirect([this](const IpAddr& dst) -> std::optional<flows::Endpoint> {
    auto e = dns_tcp_->endpoint_for(dst);
    if (!e) return std::nullopt;
    return flows::Endpoint{e->first, e->second};
  });
}

bool FlowManager::admit_echo(const IpAddr& src, const IpAddr& dst, const wire::Ipv4Repr* ip4,
                             const wire::Ipv6Repr* ip6, Bytes l4, Instant now) {
  flows::FlowInfo info;
  info.proto = flows::FlowProto::icmp;
  info.guest = src;
  info.remote = dst;
  if (admission_.icmp_echo(info)) return true;
  // R-POL-10: administratively prohibited (IPv4 3/13, IPv6 1/1) from the gateway, or silence.
  if (admission_.drop_denied()) {
    counters_.drop(DropReason::policy);
  } else if (ip4) {
    io_.send_icmp_error_v4(*ip4, l4, destinations_.config().gateway4, 3, 13, now);
  } else {
    io_.send_icmp_error_v6(*ip6, l4, destinations_.config().gateway6, 1, 1, now);
  }
  return false;
}

// R-OBS-3 dns_query / dns_denied / dns_blocked / dns_rebind_blocked.
void FlowManager::audit_dns(const dns::DnsEvent& e) {
  const std::string_view ev = dns::dns_event_name(e.kind);
  if (!audit_->wants(ev)) return;
  static constexpr std::string_view kRcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  const auto rc = size_t(e.rcode);
  const policy::Policy& pol = policy_.get().policy();
  audit_->emit(ev, [&](obs::JsonWriter& w) {
    obs::FlowFields f;
    f.proto = e.client->transport == dns::Transport::tcp ? "tcp" : "udp";
    f.dir = "egress";
    f.src = e.client->guest;
    f.src_port = e.client->guest_port;
    f.dst = e.client->server;
    f.dst_port = e.client->server_port;
    f.name = e.qname;
    f.name_src = "query";
    const bool refused = e.kind != dns::DnsEvent::Kind::query;
    f.verdict = refused ? "deny" : "allow";
    if (e.kind == dns::DnsEvent::Kind::blocked) {
      f.rule = obs::RuleRef{std::nullopt, "block", {}, "block list"};
    } else if (e.verdict) {
      if (e.verdict->rule && *e.verdict->rule < pol.rules.size()) {
        const policy::Rule& r = pol.rules[*e.verdict->rule];
        f.rule = obs::RuleRef{*e.verdict->rule, policy::origin_name(r.origin), r.text, r.label};
      } else {
        f.rule = obs::RuleRef{std::nullopt, "default", {}, {}};
      }
    }
    if (e.kind == dns::DnsEvent::Kind::rebind_blocked) f.reason = "rebind";
    obs::write_flow(w, f);
    w.str("qname", e.qname);
    w.u64("qtype", e.qtype);
    w.str("rcode", rc < std::size(kRcodes) ? kRcodes[rc] : "OTHER");
    if (e.address) w.str("address", e.address->to_string());
    if (!refused) {
      w.u64("answers", e.answers);
      if (e.upstream) w.endpoint("upstream", e.upstream->addr, e.upstream->port);
      w.u64("latency_ms", uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(e.latency).count()));
      w.boolean("pinned", e.pinned);
    }
  });
}

void FlowManager::on_answer(const dns::Client& c, std::vector<std::byte> msg) {
  if (c.guest.is_v6) io_.send_udp_v6(c.server.v6, c.guest.v6, c.server_port, c.guest_port, msg);
  else io_.send_udp_v4(c.server.v4, c.guest.v4, c.server_port, c.guest_port, msg);
}

void FlowManager::refuse_port(Bytes l4, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now) {
  counters_.inc(Counter::dns_alt_port_refused);
  if (deny_silently_) return;
  if (ip4) io_.send_icmp_error_v4(*ip4, l4, ip4->dst, wire::kIcmpDestUnreachable, kIcmp4PortUnreachable, now);
  else io_.send_icmp_error_v6(*ip6, l4, ip6->dst, wire::kIcmpv6DestUnreachable, kIcmp6PortUnreachable, now);
}

bool FlowManager::on_dns_udp(const IpAddr& src, const IpAddr& dst, Bytes l4, const wire::Ipv4Repr* ip4,
                             const wire::Ipv6Repr* ip6, Instant now) {
  if (l4.size() < wire::UdpRepr::kHeaderLen) return false;  // the relay counts it
  const uint16_t dport = load_be16(l4.data() + 2);
  if (dport == 53) {
    Bytes payload;
    auto hdr = wire::UdpRepr::parse(l4, &payload);
    if (!hdr) {
      counters_.drop(DropReason::bad_udp);
      return true;
    }
    dns::Client c;
    c.guest = src;
    c.guest_port = hdr->src_port;
    c.server = dst;
    c.server_port = 53;
    c.transport = dns::Transport::udp;
    dns_->on_query(c, payload, *this);
    return true;
  }
  if (refuse_alt_ports_ && (dport == 853 || dport == 5353 || dport == 5355 || dport == 137)) {
    refuse_port(l4, ip4, ip6, now);
    return true;
  }
  return false;
}

bool FlowManager::refuse_dns_tcp(Bytes l4, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now) {
  if (!refuse_alt_ports_ || l4.size() < 4) return false;
  const uint16_t dport = load_be16(l4.data() + 2);
  if (dport != 5353 && dport != 5355) return false;
  refuse_port(l4, ip4, ip6, now);
  return true;
}

void FlowManager::on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) {
  switch (ip.protocol) {
    case wire::kProtoTcp:
      if (refuse_dns_tcp(l4, &ip, nullptr, now)) return;
      tcp_.on_segment_v4(ip, l4, now);
      return;
    case wire::kProtoUdp:
      // R-UDP-1 step 3: replies on published UDP mappings bypass the egress relay.
      if (publisher_.on_guest_udp_v4(ip, l4, now)) return;
      if (on_dns_udp(IpAddr(ip.src), IpAddr(ip.dst), l4, &ip, nullptr, now)) return;
      udp_.on_datagram_v4(ip, l4, now);
      return;
    case wire::kProtoIcmp: {
      auto echo = wire::Icmpv4Repr::parse(l4);
      if (!echo) {
        counters_.drop(DropReason::bad_icmp);
      } else if (echo->type != wire::kIcmpEchoRequest || echo->code != 0) {
        counters_.inc(Counter::ignored_icmp);
      } else if (!icmp_) {
        counters_.drop(DropReason::policy);
      } else if (admit_echo(IpAddr(ip.src), IpAddr(ip.dst), &ip, nullptr, l4, now)) {
        icmp_->on_echo_v4(ip, *echo, now);
      }
      return;
    }
    default:
      counters_.drop(DropReason::unsupported_proto);
  }
}

void FlowManager::on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) {
  switch (ip.next_header) {
    case wire::kProtoTcp:
      if (refuse_dns_tcp(l4, nullptr, &ip, now)) return;
      tcp_.on_segment_v6(ip, l4, now);
      return;
    case wire::kProtoUdp:
      if (publisher_.on_guest_udp_v6(ip, l4, now)) return;
      if (on_dns_udp(IpAddr(ip.src), IpAddr(ip.dst), l4, nullptr, &ip, now)) return;
      udp_.on_datagram_v6(ip, l4, now);
      return;
    case wire::kProtoIcmpv6: {
      auto echo = wire::Icmpv6Repr::parse(l4, ip.src, ip.dst);
      if (!echo) {
        counters_.drop(DropReason::bad_icmp);
      } else if (echo->type != wire::kIcmpv6EchoRequest || echo->code != 0) {
        counters_.inc(Counter::ignored_icmp);
      } else if (!icmp_) {
        counters_.drop(DropReason::policy);
      } else if (admit_echo(IpAddr(ip.src), IpAddr(ip.dst), nullptr, &ip, l4, now)) {
        icmp_->on_echo_v6(ip, *echo, now);
      }
      return;
    }
    default:
      counters_.drop(DropReason::unsupported_proto);
  }
}

}  // namespace moat::app
